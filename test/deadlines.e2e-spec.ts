import { QueueDepth } from '@bales/queue';
import { EXAMPLE_INPUT } from './support/example-input';
import { TestGateway, UUID, getJson, post, sleep, startGateway, statuses, waitFor } from './support/gateway';
import { heavyModelsDir } from './support/models';
import { expectRemovedAndNeverRun, processorStats } from './support/queued-work';
import { TestRedis } from './support/redis-server';

const body = (extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT }, ...extra });

describe('deadlines: timeout_ms and BATCHER_TIMEOUT_S (in-process gateways, real Redis, BullMQ and ONNX Runtime)', () => {
  let redis: TestRedis;
  let heavyDir: string;
  let prefixes = 0;
  // Each test its own key space on the shared throwaway Redis.
  const prefix = () => `d${++prefixes}`;

  beforeAll(async () => {
    redis = await TestRedis.start();
    heavyDir = heavyModelsDir(1024);
  });
  afterAll(() => redis?.stop());

  describe('timeout_ms', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '2', QUEUE_PREFIX: prefix() });
    });
    afterAll(() => gw?.close());

    it.each([0, -5, 1.5, '100', 2001, [], {}])('returns 400 naming timeout_ms when it is %p', async (timeout) => {
      const res = await post(`${gw.url}/infer`, body({ timeout_ms: timeout }));
      expect(res.status).toBe(400);
      expect(res.body.message).toContain('timeout_ms');
    });

    it('returns 504 as soon as timeout_ms passes, removes the queued work, and never runs it', async () => {
      const p = prefix();
      const front = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', QUEUE_PREFIX: p });
      try {
        const answers = await Promise.all(Array.from({ length: 20 }, () => post(`${front.url}/infer`, body({ timeout_ms: 250 }))));
        expect(statuses(answers)).toEqual({ 504: 20 });
        for (const a of answers) expect(a.ms).toBeLessThan(1000);
        await expectRemovedAndNeverRun(redis.url, front, p);
      } finally {
        await front.close();
      }
    });

    it('skips rows already fetched whose deadline passed while more urgent work ran: they answer 504 and never run', async () => {
      const p = prefix();
      // Every urgent row is in Redis before any runs, queued by a replica that does not process: the doomed rows can
      // then only be fetched behind them, however fast batches run or the client sends requests.
      const front = await startGateway(redis.url, { MODELS_DIR: heavyDir, PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '60', QUEUE_PREFIX: p });
      let worker: TestGateway | undefined;
      try {
        const urgent = Array.from({ length: 320 }, () => post(`${front.url}/infer`, { model_id: 'heavy', priority: 1, payload: { input: EXAMPLE_INPUT } }));
        await waitFor(async () => front.app.get(QueueDepth).snapshot().heavy?.[1] === 320);
        // One worker thread with one ONNX Runtime thread: the 320 urgent rows keep it busy far past the doomed rows'
        // 100 ms, where two threads or fewer rows could let a doomed row start in time.
        worker = await startGateway(redis.url, { MODELS_DIR: heavyDir, THREAD_POOL_SIZE: '1', ORT_INTRA_OP_THREADS: '1', QUEUE_PREFIX: p });
        await waitFor(async () => (await processorStats(worker!.url)).rows_run >= 4);
        // Fetched once the urgent rows are (64 jobs may be in hand), then held behind them past their deadline.
        const doomed = await Promise.all(
          Array.from({ length: 20 }, () => post(`${front.url}/infer`, { model_id: 'heavy', priority: 3, timeout_ms: 100, payload: { input: EXAMPLE_INPUT } })),
        );
        expect(statuses(doomed)).toEqual({ 504: 20 });
        expect(statuses(await Promise.all(urgent))).toEqual({ 200: 320 });
        await sleep(500);
        const stats = await processorStats(worker.url);
        // Not one of the 504s ran: removed from Redis if still there, skipped if already fetched.
        expect(stats.rows_run).toBe(320);
      } finally {
        await worker?.close();
        await front.close();
      }
    });
  });

  describe('BATCHER_TIMEOUT_S', () => {
    it('answers 504 when nothing serves the request in BATCHER_TIMEOUT_S, and never runs it afterwards', async () => {
      const p = prefix();
      // This replica only enqueues: nothing processes the work until the second one starts.
      const front = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '0.3', QUEUE_PREFIX: p });
      try {
        const res = await post(`${front.url}/infer`, body({ model_type: 'classification' }));
        expect(res.status).toBe(504);
        expect(res.body).toMatchObject({ statusCode: 504, request_id: expect.stringMatching(UUID) });
        expect(res.ms).toBeLessThan(1500);
        const worker = await startGateway(redis.url, { QUEUE_PREFIX: p });
        try {
          // The expired work was removed from the queue or is skipped when fetched: either way it never runs.
          await sleep(1000);
          expect((await getJson(`${worker.url}/health`)).body.processor.rows_run).toBe(0);
          // The worker does run live work, so the zero above is not an idle processor.
          expect((await post(`${front.url}/infer`, body({ model_type: 'classification', timeout_ms: 250 }))).status).toBe(200);
          expect((await getJson(`${worker.url}/health`)).body.processor.rows_run).toBe(1);
        } finally {
          await worker.close();
        }
      } finally {
        await front.close();
      }
    });
  });
});
