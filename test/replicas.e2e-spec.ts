import IORedis from 'ioredis';
import { GatewayProcess, getJson, post, spawnGateway } from './support/gateway';
import { TestRedis } from './support/redis-server';
import { EXAMPLE_INPUT } from './support/example-input';

const body = { model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT } };

async function publishCalls(url: string): Promise<number> {
  const redis = new IORedis(url);
  try {
    const stats = await redis.info('commandstats');
    return Number(/cmdstat_publish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  } finally {
    redis.disconnect();
  }
}

describe('several replicas on one Redis (separate OS processes)', () => {
  let redis: TestRedis;
  const procs: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it('answers through the local path, without Redis pub/sub, when the replica that enqueued the work runs it', async () => {
    const solo = await spawnGateway(redis.url);
    procs.push(solo);
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(`${solo.url}/infer`, body)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(await publishCalls(redis.url)).toBe(0);
    await solo.stop();
  });

  it('runs work enqueued by replica A on replica B, and still answers the client through A', async () => {
    const [a, b] = await Promise.all([spawnGateway(redis.url, { PROCESSOR_ENABLED: 'false' }), spawnGateway(redis.url)]);
    procs.push(a, b);
    const answers = await Promise.all(Array.from({ length: 200 }, () => post(`${a.url}/infer`, body)));
    expect(answers.map((x) => x.status)).toEqual(answers.map(() => 200));
    expect(new Set(answers.map((x) => x.body.request_id)).size).toBe(200);

    const healthA = (await getJson(`${a.url}/health`)).body;
    const healthB = (await getJson(`${b.url}/health`)).body;
    expect(healthA.processor).toMatchObject({ enabled: false, rows_run: 0 });
    expect(healthB.processor.rows_run).toBe(200);
    expect(healthA.pending_requests).toBe(0);
    expect(await publishCalls(redis.url)).toBeGreaterThan(0);
  });
});
