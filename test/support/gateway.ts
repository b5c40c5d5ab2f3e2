import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createGatewayApp } from '../../apps/gateway/src/app.factory';
import { TestRedis } from './redis-server';

export const ROOT = join(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the condition until it holds; throws when timeoutMs passes first. */
export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs = 15000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(everyMs);
  }
}

/** Settings every test gateway shares: a free port on loopback and a quiet log. */
function testEnv(redisUrl: string, env: Record<string, string>): Record<string, string> {
  return { REDIS_URL: redisUrl, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'error', MODELS_DIR: join(ROOT, 'models'), THREAD_POOL_SIZE: '2', ...env };
}

export interface TestGateway {
  url: string;
  app: NestFastifyApplication;
  close(): Promise<void>;
}

/** The real gateway, in this process, listening on a free port. */
export async function startGateway(redisUrl: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const { app } = await createGatewayApp(testEnv(redisUrl, env));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { url, app, close: () => app.close() };
}

/** A throwaway Redis and a gateway on it for the enclosing describe, torn down after it. */
export function ownGateway(env: Record<string, string> = {}): { redis: TestRedis; gw: TestGateway } {
  const own = {} as { redis: TestRedis; gw: TestGateway };
  beforeAll(async () => {
    own.redis = await TestRedis.start();
    own.gw = await startGateway(own.redis.url, env);
  });
  afterAll(async () => {
    await own.gw?.close();
    await own.redis?.stop();
  });
  return own;
}

export interface GatewayProcess {
  url: string;
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The real gateway as its own OS process (`node apps/gateway/src/main.ts` through swc), as a replica would run. */
export async function spawnGateway(redisUrl: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, ['-r', '@swc-node/register', join(ROOT, 'apps/gateway/src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...testEnv(redisUrl, { LOG_LEVEL: 'info', ...env }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /BALES listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) resolve(m[1]);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
    setTimeout(() => reject(new Error(`gateway did not start in 30 s:\n${output}`)), 30000).unref();
  });
  return {
    url,
    proc,
    output: () => output,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

export interface HttpAnswer {
  status: number;
  body: any;
  ms: number;
}

/** How many answers came with each status, e.g. { 200: 18, 429: 2 }. */
export const statuses = (answers: HttpAnswer[]) => answers.reduce<Record<number, number>>((acc, a) => ({ ...acc, [a.status]: (acc[a.status] ?? 0) + 1 }), {});

/** A request_id as the gateway makes them. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** POSTs a JSON body (or a raw string) and returns status, parsed body and time taken. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text, the test will say so */
  }
  return { status: res.status, body: parsed, ms: performance.now() - started };
}

export async function getJson(url: string): Promise<HttpAnswer> {
  const started = performance.now();
  const res = await fetch(url);
  return { status: res.status, body: await res.json(), ms: performance.now() - started };
}
