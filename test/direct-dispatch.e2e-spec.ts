import IORedis from 'ioredis';
import { EXAMPLE_INPUT } from './support/example-input';
import { GatewayProcess, TestGateway, post, spawnGateway, startGateway, waitFor } from './support/gateway';
import { heavyModelsDir } from './support/models';
import { TestRedis } from './support/redis-server';
import { jobsWritten as jobsWrittenUnder } from './support/queued-work';

const body = (extra: object = {}) => ({ model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT }, ...extra });

/** A counter or gauge from a gateway's /metrics, 0 when it is not there. */
async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
}

describe('direct dispatch: a request that finds its replica idle runs without the round trips through Redis', () => {
  let redis: TestRedis;
  let client: IORedis;
  /** Jobs BullMQ has written under a queue prefix: its job-id counter. */
  const jobsWritten = (prefix: string) => jobsWrittenUnder(redis.url, prefix);

  beforeAll(async () => {
    redis = await TestRedis.start();
    client = new IORedis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  describe('one replica', () => {
    let direct: TestGateway;
    let queued: TestGateway;
    beforeAll(async () => {
      direct = await startGateway(redis.url, { QUEUE_PREFIX: 'direct' });
      queued = await startGateway(redis.url, { QUEUE_PREFIX: 'queued', DIRECT_DISPATCH: 'false' });
    });
    afterAll(async () => {
      await direct?.close();
      await queued?.close();
    });

    it('runs requests sent one at a time at once, writing no job, and counts them in bales_direct_rows_total', async () => {
      const answers = [];
      for (let i = 0; i < 20; i++) answers.push(await post(`${direct.url}/infer`, body()));
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(new Set(answers.map((a) => a.body.request_id)).size).toBe(20);
      expect(await jobsWritten('direct')).toBe(0);
      expect(await metric(direct.url, 'bales_direct_rows_total')).toBe(20);
    });

    it('queues every request with DIRECT_DISPATCH=false', async () => {
      for (let i = 0; i < 10; i++) expect((await post(`${queued.url}/infer`, body())).status).toBe(200);
      expect(await jobsWritten('queued')).toBe(10);
      expect(await metric(queued.url, 'bales_direct_rows_total')).toBe(0);
    });

    it.each([
      ['directly', () => direct.url],
      ['through the queue', () => queued.url],
    ])('answers a request run %s with a Server-Timing header whose stages add up to latency_ms', async (_, url) => {
      const res = await fetch(`${url()}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()) });
      const answer = (await res.json()) as { latency_ms: number };
      const stages = Object.fromEntries([...(res.headers.get('server-timing') ?? '').matchAll(/(\w+);dur=([\d.]+)/g)].map((m) => [m[1], Number(m[2])]));
      expect(Object.keys(stages)).toEqual(['request', 'queue', 'batch', 'inference', 'return', 'total']);
      expect(stages.total).toBeCloseTo(answer.latency_ms, 2);
      const sum = stages.request + stages.queue + stages.batch + stages.inference + stages.return;
      // Each stage is rounded to a microsecond, and the worker thread's clock is read apart from the main thread's.
      expect(Math.abs(sum - stages.total)).toBeLessThan(0.1);
      expect(stages.inference).toBeGreaterThan(0);
    });

    it('answers V2 infer with the same Server-Timing stages, a tensor of several rows queued as one job', async () => {
      const [jobsBefore, directBefore] = [await jobsWritten('direct'), await metric(direct.url, 'bales_direct_rows_total')];
      const v2 = { inputs: [{ name: 'input', shape: [2, 128], datatype: 'FP32', data: [...EXAMPLE_INPUT, ...EXAMPLE_INPUT] }] };
      const res = await fetch(`${direct.url}/v2/models/stub_v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v2) });
      expect(res.status).toBe(200);
      expect([...(res.headers.get('server-timing') ?? '').matchAll(/(\w+);dur=/g)].map((m) => m[1])).toEqual(['request', 'queue', 'batch', 'inference', 'return', 'total']);
      // Its two rows travel together: one job, and neither run alone by direct dispatch.
      expect(await jobsWritten('direct')).toBe(jobsBefore + 1);
      expect(await metric(direct.url, 'bales_direct_rows_total')).toBe(directBefore);
    });

    it('under a burst, runs directly only while a worker thread is free and queues the rest, answering each request once', async () => {
      const before = await metric(direct.url, 'bales_direct_rows_total');
      const jobsBefore = await jobsWritten('direct');
      const answers = await Promise.all(Array.from({ length: 200 }, () => post(`${direct.url}/infer`, body())));
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(new Set(answers.map((a) => a.body.request_id)).size).toBe(200);
      const directRows = (await metric(direct.url, 'bales_direct_rows_total')) - before;
      expect(directRows).toBeGreaterThanOrEqual(1);
      expect(directRows).toBeLessThan(200);
      expect(await jobsWritten('direct')).toBeGreaterThan(jobsBefore);
      // The queued ones batched together, as without the shortcut.
      expect(Math.max(...answers.map((a) => a.body.batch_size))).toBeGreaterThan(1);
    });
  });

  describe('several replicas (separate OS processes)', () => {
    const procs: GatewayProcess[] = [];
    afterAll(async () => {
      await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    });

    it("never runs a request directly while another replica's work waits in Redis, and the more urgent request still goes first", async () => {
      const env = { MODELS_DIR: heavyModelsDir(1024), DEFAULT_MODEL_ID: 'heavy', QUEUE_PREFIX: 'fleet', THREAD_POOL_SIZE: '1', MAX_BATCH_SIZE: '4' };
      // A only enqueues: its backlog waits in Redis for B, the one processor.
      const [a, b] = await Promise.all([spawnGateway(redis.url, { ...env, PROCESSOR_ENABLED: 'false' }), spawnGateway(redis.url, env)]);
      procs.push(a, b);
      const heavy = (priority: number) => ({ model_id: 'heavy', priority, payload: { input: EXAMPLE_INPUT } });
      const finished: string[] = [];
      const backlog = Array.from({ length: 40 }, () => post(`${a.url}/infer`, heavy(3)).then((r) => (finished.push('backlog'), r)));
      await waitFor(async () => (await jobsWritten('fleet')) > 0);
      // B's own client, more urgent, while A's rows wait: B's fetch is busy, so the request is queued and overtakes them.
      const urgent = await post(`${b.url}/infer`, heavy(1)).then((r) => (finished.push('urgent'), r));
      expect(urgent.status).toBe(200);
      const answers = await Promise.all(backlog);
      expect(answers.map((x) => x.status)).toEqual(answers.map(() => 200));
      expect(await metric(b.url, 'bales_direct_rows_total')).toBe(0);
      expect(finished.indexOf('urgent')).toBeLessThan(finished.length - 4);
    });
  });
});
