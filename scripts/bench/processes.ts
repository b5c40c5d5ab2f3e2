/** The servers the end-to-end benchmark starts, each its own OS process, and the CPU each one uses. */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { productionMallocEnv, productionNodeFlags } from '../../test/support/production-env';
import { freePort } from '../../test/support/redis-server';
import { ROOT } from './common';

export interface Server {
  name: string;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts a Node server script and waits until `probe` succeeds against it. Every server gets the glibc malloc
 * settings and the V8 flags the gateway runs with in production (docs/operations.md, Memory), so the baselines differ from it
 * in code only.
 */
async function startNode(name: string, args: string[], env: Record<string, string>, probe: (url: string) => Promise<boolean>): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, [...productionNodeFlags(), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...productionMallocEnv(), HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${stderr}`);
    if (await probe(url).catch(() => false)) break;
    if (Date.now() > deadline) throw new Error(`${name} did not start in 60 s:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name,
    url,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** The real gateway from its sources (`node -r @swc-node/register apps/gateway/src/main.ts`), answering /infer. */
export function startGateway(name: string, env: Record<string, string>, body: string, nodeArgs: string[] = []): Promise<Server> {
  const args = [...nodeArgs, '-r', '@swc-node/register', join(ROOT, 'apps/gateway/src/main.ts')];
  return startNode(name, args, { LOG_LEVEL: 'warn', ...env }, async (url) => {
    const res = await fetch(`${url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await res.arrayBuffer();
    return res.status === 200;
  });
}

const healthy = async (url: string) => {
  const res = await fetch(`${url}/health`);
  await res.arrayBuffer();
  return res.ok;
};

/** A bare Fastify handler answering a fixed JSON body of the gateway's size: the HTTP ceiling. */
export function startBareFastify(answer: string): Promise<Server> {
  return startNode('bare Fastify', ['-r', '@swc-node/register', join(__dirname, 'bare-fastify.ts')], { BARE_ANSWER: answer }, healthy);
}

/** The gateway's HTTP stack (Nest, Fastify, logger, validation) answering the same body with no queue: the framework ceiling. */
export function startBareNest(answer: string): Promise<Server> {
  return startNode('Nest stack', ['-r', '@swc-node/register', join(__dirname, 'bare-nest.ts')], { BARE_ANSWER: answer }, healthy);
}

/**
 * CPU seconds (user + system) a process (all its threads), or one of its threads, has used so far, from /proc.
 * With `children`, those of the child processes it has waited for are added: wrk, which the bench runs to its end.
 */
export function cpuSeconds(pid: number, tid?: number, children = false): number {
  try {
    // Fields after the command name, which may itself hold spaces; utime, stime, cutime and cstime are fields 14 to 17.
    const fields = readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0);
    return ticks / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds each thread of a process has used so far, by thread id, from /proc. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const seconds = cpuSeconds(pid, Number(tid));
    if (Number.isFinite(seconds)) out.set(Number(tid), seconds);
  }
  return out;
}

/** Ticks the whole machine has spent idle, and in all, so far (all cores), from /proc/stat. */
export function machineTicks(): { idle: number; total: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: ticks[3] + ticks[4], total: ticks.reduce((a, b) => a + b, 0) };
}
