import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

/** Listens on the port for a moment; resolves once closed again, or rejects when the port is taken. */
function bindOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** The first port of the kernel's ephemeral range, from which outgoing connections take their local port. */
export function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * A port nothing listens on right now, below the kernel's ephemeral range, for a server started on it a moment
 * later or stopped and restarted on it. Any port in the ephemeral range can meanwhile become the local port of an
 * outgoing connection on the machine (another suite's HTTP client or wrk, or the gateway's own Redis reconnection
 * connecting to itself), and the server then finds it in use. Nothing takes a port below that range unless asked
 * for it by number.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = top - 1 - Math.floor(Math.random() * 12000);
    try {
      await bindOnce(port);
      return port;
    } catch {
      /* taken: try another */
    }
  }
  throw new Error('no free port below the ephemeral range');
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.setTimeout(500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** A throwaway redis-server on a free port, keeping nothing on disk. */
export class TestRedis {
  private proc?: ChildProcess;

  private constructor(readonly port: number) {}

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort());
    await redis.resume();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** (Re)starts the server on the same port, empty. Rejects at once when redis-server exits instead (port taken). */
  async resume(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc = proc;
    let output = '';
    proc.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-2000)));
    for (let i = 0; i < 100; i++) {
      if (await answersPing(this.port)) return;
      if (proc.exitCode !== null) throw new Error(`redis-server exited on port ${this.port}: ${output.trim().split('\n').pop()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  /** Kills the server, as an outage would. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }
}
