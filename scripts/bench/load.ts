/**
 * The two ways the end-to-end benchmark drives a server, with one body:
 * - closed loop (saturation): autocannon, or wrk when it is on the PATH;
 * - open loop (fixed offered rate): a paced client that sends on a schedule whatever the answers do, and
 *   times each request from when it was due, so a stalled server cannot hide its queueing
 *   (autocannon's overallRate sends each second's quota in a burst and waits on answers, so it is not open loop).
 */
import autocannon from 'autocannon';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, round } from './common';

export interface LoadResult {
  client: string;
  seconds: number;
  requests: number;
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
}

export interface OpenLoopResult extends LoadResult {
  offered: number;
  /** Mean of the gateway's own latency_ms and batch_size over the 200 answers, when the server sends them. */
  gatewayLatencyMs?: number;
  avgBatch?: number;
  /** P99 of the gateway's latency_ms and queued_ms: where a client-side tail is spent (inside, or in the queue). */
  gatewayP99Ms?: number;
  queuedP99Ms?: number;
  /** Median of each stage the gateway's Server-Timing header names (request, queue, batch, inference, return, total). */
  stagesP50Ms?: Record<string, number>;
  /** Median of the gateway's own latency_ms. */
  gatewayP50Ms?: number;
}

/** A Server-Timing header's stages: `name;dur=ms, ...`. */
export function parseServerTiming(header: string | undefined): Record<string, number> {
  const stages: Record<string, number> = {};
  for (const m of (header ?? '').matchAll(/([\w-]+);dur=([\d.]+)/g)) stages[m[1]] = Number(m[2]);
  return stages;
}

export type ClosedLoopClient = 'wrk' | 'autocannon';
export const CLOSED_LOOP_CLIENTS: readonly ClosedLoopClient[] = ['wrk', 'autocannon'];

export const hasWrk = (): boolean => spawnSync('wrk', ['--version']).error === undefined;

/**
 * wrk when it is installed: written in C, it takes far less of the cores the servers share with it than autocannon,
 * which runs in this Node process (docs/benchmarks.md).
 */
export const defaultClient = (): ClosedLoopClient => (hasWrk() ? 'wrk' : 'autocannon');

export async function closedLoop(url: string, body: string, connections: number, seconds: number, client = defaultClient()): Promise<LoadResult> {
  return client === 'wrk' ? wrk(url, body, connections, seconds) : cannon(url, body, connections, seconds);
}

async function cannon(url: string, body: string, connections: number, seconds: number): Promise<LoadResult> {
  const r = await autocannon({ url, method: 'POST', body, headers: { 'content-type': 'application/json' }, connections, duration: seconds });
  const requests = r['2xx'] + r.non2xx;
  return {
    client: `autocannon (${connections} connections)`,
    seconds: r.duration,
    requests,
    throughput: round(r['2xx'] / r.duration, 0),
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    errors: r.non2xx + r.errors,
  };
}

/** wrk with --latency; its body is set from a Lua script, the only way wrk takes one. */
function wrk(url: string, body: string, connections: number, seconds: number): LoadResult {
  const script = join(mkdtempSync(join(tmpdir(), 'bales-wrk-')), 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(body)}\n`);
  const out = execFileSync('wrk', ['-t', '2', '-c', String(connections), '-d', `${seconds}s`, '--latency', '-s', script, url], { encoding: 'utf8' });
  const ms = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'];
  };
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  return {
    client: `wrk (2 threads, ${connections} connections)`,
    seconds,
    requests: total,
    throughput: round((total - non2xx) / seconds, 0),
    p50: ms('50'),
    p90: ms('90'),
    p99: ms('99'),
    errors: non2xx + socketErrors,
  };
}

/**
 * Untimed lead-in of each open-loop run, at its rate on its connections. Without it the start of a run measures the
 * client rather than the server: new connections and cold client code answer late, enough at the target rate to set
 * the P99 on their own (docs/benchmarks.md).
 */
export const OPEN_LOOP_WARMUP_S = 1;

/** Sends `rate` requests per second for `seconds` after a lead-in, on schedule, and waits for every answer. */
export function openLoop(url: string, body: string, rate: number, seconds: number): Promise<OpenLoopResult> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const payload = Buffer.from(body);
  const headers = { 'content-type': 'application/json', 'content-length': payload.length };
  const warmup = Math.round(rate * OPEN_LOOP_WARMUP_S);
  const total = warmup + Math.round(rate * seconds);
  const interval = 1000 / rate;
  const latencies: number[] = [];
  let errors = 0;
  let gatewayMs = 0;
  const gatewayLatencies: number[] = [];
  const queuedLatencies: number[] = [];
  const stages = new Map<string, number[]>();
  let batchRows = 0;
  let answered = 0;
  let sent = 0;

  return new Promise((resolve) => {
    const started = performance.now();
    const timedFrom = started + warmup * interval;
    const finish = () => {
      const elapsed = (performance.now() - timedFrom) / 1000;
      agent.destroy();
      const sorted = Float64Array.from(latencies).sort();
      const ok = latencies.length;
      resolve({
        client: 'paced open-loop client',
        offered: rate,
        seconds: round(elapsed, 2),
        requests: total - warmup,
        throughput: round(ok / elapsed, 0),
        p50: round(percentile(sorted, 50), 2),
        p90: round(percentile(sorted, 90), 2),
        p99: round(percentile(sorted, 99), 2),
        errors,
        gatewayLatencyMs: ok && gatewayMs ? round(gatewayMs / ok, 3) : undefined,
        avgBatch: ok && batchRows ? round(batchRows / ok, 1) : undefined,
        gatewayP99Ms: gatewayLatencies.length ? round(percentile(Float64Array.from(gatewayLatencies).sort(), 99), 2) : undefined,
        queuedP99Ms: queuedLatencies.length ? round(percentile(Float64Array.from(queuedLatencies).sort(), 99), 2) : undefined,
        gatewayP50Ms: gatewayLatencies.length ? round(percentile(Float64Array.from(gatewayLatencies).sort(), 50), 3) : undefined,
        stagesP50Ms: stages.size ? Object.fromEntries([...stages].map(([name, list]) => [name, round(percentile(Float64Array.from(list).sort(), 50), 3)])) : undefined,
      });
    };
    const settle = () => {
      if (++answered === total) finish();
    };
    const fire = (due: number, timed: boolean) => {
      const req = request({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (!timed) {
            if (res.statusCode !== 200) errors++;
          } else if (res.statusCode === 200) {
            latencies.push(performance.now() - due);
            for (const [name, ms] of Object.entries(parseServerTiming(String(res.headers['server-timing'] ?? '')))) {
              const list = stages.get(name);
              if (list) list.push(ms);
              else stages.set(name, [ms]);
            }
            try {
              const answer = JSON.parse(Buffer.concat(chunks).toString()) as { latency_ms?: number; batch_size?: number; queued_ms?: number };
              gatewayMs += answer.latency_ms ?? 0;
              if (answer.latency_ms !== undefined) gatewayLatencies.push(answer.latency_ms);
              if (answer.queued_ms !== undefined) queuedLatencies.push(answer.queued_ms);
              batchRows += answer.batch_size ?? 0;
            } catch {
              /* a body that is not JSON still counts as answered; its latency is kept */
            }
          } else errors++;
          settle();
        });
      });
      req.on('error', () => {
        errors++;
        settle();
      });
      req.end(payload);
    };
    // Each tick sends every request that has fallen due since the last, each timed from its own due time.
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - started) / interval) + 1);
      for (; sent < due; sent++) fire(started + sent * interval, sent >= warmup);
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
}
