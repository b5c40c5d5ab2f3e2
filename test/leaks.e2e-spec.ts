import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayProcess, post, spawnGateway } from './support/gateway';
import { productionMallocEnv } from './support/production-env';
import { testRepository } from './support/models';
import { TestRedis } from './support/redis-server';
import { EXAMPLE_INPUT } from './support/example-input';

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

// Slow by nature (many loads of a 5 MB model in separate processes); CI runs it all the same.
describe('repeated reloads [slow]', () => {
  let redis: TestRedis;
  let dir: string;
  const procs: GatewayProcess[] = [];

  beforeAll(async () => {
    dir = testRepository();
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  /** A gateway process serving the test repository plus `heavy`, a 5 MB model to reload. */
  async function gatewayWithHeavy(env: Record<string, string>): Promise<GatewayProcess> {
    // The glibc settings the Dockerfile, compose, Kubernetes and `npm start` run the gateway with. Each test's
    // gateway is a fleet of its own: the catalog would otherwise still hold the previous one's `heavy`.
    const gw = await spawnGateway(redis.url, { MODELS_DIR: dir, QUEUE_PREFIX: `leaks${procs.length}`, ...productionMallocEnv(), ...env });
    procs.push(gw);
    expect((await post(`${gw.url}/models`, { model_id: 'heavy', weights_path: 'extra/heavy.onnx', task: 'classification' })).status).toBe(201);
    return gw;
  }

  // Alternating two files makes every reload really load new weights.
  const weights = (i: number) => ({ weights_path: i % 2 ? join(dir, 'extra/heavy.onnx') : join(dir, 'stub_v2.onnx'), allow_signature_change: true });

  it('do not leak: RSS after 50 reloads stays within 10% of RSS after the first 5', async () => {
    const gw = await gatewayWithHeavy({});
    let afterFive = 0;
    for (let i = 1; i <= 50; i++) {
      expect((await post(`${gw.url}/models/heavy/reload`, weights(i))).status).toBe(200);
      if (i === 5) afterFive = rssKb(gw.proc.pid!);
    }
    expect((await post(`${gw.url}/infer`, { model_id: 'heavy', payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
    expect(rssKb(gw.proc.pid!) / afterFive).toBeLessThan(1.1);
  }, 120_000);

  it('recycles the worker threads when RSS creeps past WORKER_RECYCLE_RSS_GROWTH_PCT, without failing a request', async () => {
    const gw = await gatewayWithHeavy({ WORKER_RECYCLE_RSS_GROWTH_PCT: '1' });
    const statuses: number[] = [];
    let stop = false;
    const client = async () => {
      while (!stop) statuses.push((await post(`${gw.url}/infer`, { model_id: 'heavy', payload: { input: EXAMPLE_INPUT } })).status);
    };
    const clients = Array.from({ length: 20 }, client);
    for (let i = 1; i <= 12 && !/recycled \d+ worker threads/.test(gw.output()); i++) {
      expect((await post(`${gw.url}/models/heavy/reload`, weights(i))).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(clients);
    expect(gw.output()).toMatch(/recycled 2 worker threads/);
    expect(statuses.length).toBeGreaterThan(100);
    expect(new Set(statuses)).toEqual(new Set([200]));
  }, 120_000);
});
