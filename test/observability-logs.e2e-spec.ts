import { spawn as spawnProcess } from 'node:child_process';
import { join } from 'node:path';
import { GatewayProcess, ROOT, post, spawnGateway } from './support/gateway';
import { TestRedis, freePort } from './support/redis-server';
import { EXAMPLE_INPUT } from './support/example-input';

interface LogLine {
  level: string;
  time: string;
  msg: string;
  context?: string;
  request_id?: string;
  [key: string]: unknown;
}

/** Every line the process wrote, each of which must be one JSON object. */
const lines = (gw: GatewayProcess): LogLine[] =>
  gw
    .output()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);

const waitForLine = async (gw: GatewayProcess, match: (l: LogLine) => boolean): Promise<LogLine> => {
  for (let i = 0; i < 50; i++) {
    const found = lines(gw).find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no such log line');
};

describe('logs: JSON lines from pino, honouring LOG_LEVEL (separate gateway processes)', () => {
  let redis: TestRedis;
  const gateways: GatewayProcess[] = [];
  const spawn = async (env: Record<string, string>) => {
    const gw = await spawnGateway(redis.url, { THREAD_POOL_SIZE: '1', ...env });
    gateways.push(gw);
    return gw;
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  it('at info: boot lines are JSON with their Nest context, and serving requests adds no line at all', async () => {
    const gw = await spawn({ LOG_LEVEL: 'info' });
    const boot = lines(gw);
    expect(boot.every((l) => typeof l.time === 'string' && typeof l.msg === 'string' && ['info', 'warn'].includes(l.level))).toBe(true);
    expect(boot).toEqual(expect.arrayContaining([expect.objectContaining({ level: 'info', context: 'NestApplication', msg: 'Nest application successfully started' })]));
    const before = gw.output().length;
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect((await post(`${gw.url}/infer`, { payload: { input: [1] } })).status).toBe(422);
    expect((await post(`${gw.url}/infer`, '{"payload": ')).status).toBe(400);
    expect((await fetch(`${gw.url}/nowhere`)).status).toBe(404);
    await new Promise((r) => setTimeout(r, 200));
    expect(gw.output().slice(before)).toBe('');
  });

  it('at debug: every line about a request carries the request_id its client got back', async () => {
    const gw = await spawn({ LOG_LEVEL: 'debug' });
    const ok = await post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
    const bad = await post(`${gw.url}/infer`, { payload: { input: [1] } });
    expect([ok.status, bad.status]).toEqual([200, 422]);
    for (const answer of [ok, bad]) {
      const line = await waitForLine(gw, (l) => l.request_id === answer.body.request_id);
      expect(line).toMatchObject({ level: 'debug', msg: 'request completed', url: '/infer', status: answer.status });
    }
    // Every request gets its own id, whichever route served it.
    expect((await post(`${gw.url}/models/stub_v1/reload`, { weights_path: join(ROOT, 'models/stub_v2.onnx') })).status).toBe(200);
    expect((await fetch(`${gw.url}/nowhere`)).status).toBe(404);
    const others = [await waitForLine(gw, (l) => l.url === '/models/stub_v1/reload'), await waitForLine(gw, (l) => l.url === '/nowhere')];
    for (const line of others) expect(line.request_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(new Set([ok.body.request_id, bad.body.request_id, ...others.map((l) => l.request_id)]).size).toBe(4);
  });

  it('at warn: no info line, not even at boot', async () => {
    // Nothing announces the port at this level, so the gateway gets a known one and is polled until live.
    const port = await freePort();
    const proc = spawnProcess(process.execPath, ['-r', '@swc-node/register', join(ROOT, 'apps/gateway/src/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: String(port), MODELS_DIR: join(ROOT, 'models'), THREAD_POOL_SIZE: '1', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 300 && !(await fetch(`${url}/health/ready`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await post(`${url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
    const levels = output.split('\n').filter((l) => l.trim() !== '').map((l) => (JSON.parse(l) as LogLine).level);
    expect(levels.filter((l) => l !== 'warn' && l !== 'error')).toEqual([]);
  });
});
