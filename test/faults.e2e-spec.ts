import { Queue } from 'bullmq';
import { PendingRequests, QueueDepth } from '@bales/queue';
import { HttpAnswer, TestGateway, getJson, post, sleep, startGateway, waitFor } from './support/gateway';
import { scrape, sample } from './support/observability';
import { TestRedis } from './support/redis-server';
import { heavyModelsDir } from './support/models';
import { EXAMPLE_INPUT } from './support/example-input';

const body = (extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT }, ...extra });

/** Jobs of the infer queue still in Redis, in any state, for the given prefix. */
async function jobsInRedis(redisUrl: string, prefix: string): Promise<number> {
  const queue = new Queue('infer', { connection: { url: redisUrl }, prefix });
  try {
    const counts = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'paused', 'waiting-children');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
  }
}

async function processorStats(url: string): Promise<{ rows_run: number; rows_expired: number }> {
  return (await getJson(`${url}/health`)).body.processor;
}

const statuses = (answers: HttpAnswer[]) => answers.reduce<Record<number, number>>((acc, a) => ({ ...acc, [a.status]: (acc[a.status] ?? 0) + 1 }), {});

describe('faults (in-process gateways, real Redis, BullMQ and ONNX Runtime)', () => {
  let redis: TestRedis;
  let heavyDir: string;
  let prefixes = 0;
  // Each test its own key space on the shared throwaway Redis.
  const prefix = () => `f${++prefixes}`;

  beforeAll(async () => {
    redis = await TestRedis.start();
    heavyDir = heavyModelsDir(1024);
  });
  afterAll(() => redis?.stop());

  /** The queued work of `front` is gone from Redis and from the shared depth, and a processor started now runs none of it. */
  async function expectRemovedAndNeverRun(front: TestGateway, p: string): Promise<void> {
    await waitFor(async () => (await jobsInRedis(redis.url, p)) === 0, 3000);
    await waitFor(() => Object.values(front.app.get(QueueDepth).snapshot().stub_v1 ?? {}).every((n) => n === 0), 3000);
    const worker = await startGateway(redis.url, { QUEUE_PREFIX: p });
    try {
      await sleep(500);
      expect(await processorStats(worker.url)).toMatchObject({ rows_run: 0 });
    } finally {
      await worker.close();
    }
  }

  describe('backpressure', () => {
    it('returns 429 with Retry-After past MAX_QUEUE_DEPTH, before anything is written to Redis, and never 5xx', async () => {
      const p = prefix();
      // Nothing processes here, so exactly MAX_QUEUE_DEPTH rows can be queued.
      const gw = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', MAX_QUEUE_DEPTH: '40', QUEUE_PREFIX: p });
      try {
        const sent = Array.from({ length: 200 }, () => post(`${gw.url}/infer`, body({ timeout_ms: 3000 })));
        await waitFor(async () => (await getJson(`${gw.url}/health`)).body.pending_requests === 40);
        await sleep(200);
        // Counted in Redis for every replica to see, and only 40 rows were written.
        expect(gw.app.get(QueueDepth).snapshot()).toEqual({ stub_v1: { 2: 40 } });
        const queue = new Queue('infer', { connection: { url: redis.url }, prefix: p });
        const rows = (await queue.getJobs(['prioritized', 'wait'])).reduce((n, job) => n + job.data.r.length, 0);
        await queue.close();
        expect(rows).toBe(40);

        const answers = await Promise.all(sent);
        expect(statuses(answers)).toEqual({ 429: 160, 504: 40 });
        const refused = await fetch(`${gw.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()) });
        // The 40 expired rows were removed from Redis and from the count, so room is back at once.
        expect(refused.status).not.toBe(429);
        const full = answers.find((a) => a.status === 429)!;
        expect(full.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', request_id: expect.any(String) });
      } finally {
        await gw.close();
      }
    });

    it('sends Retry-After: 1 on 429', async () => {
      const gw = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', MAX_QUEUE_DEPTH: '1', QUEUE_PREFIX: prefix() });
      try {
        const first = post(`${gw.url}/infer`, body({ timeout_ms: 300 }));
        await waitFor(async () => (await getJson(`${gw.url}/health`)).body.pending_requests === 1);
        const res = await fetch(`${gw.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()) });
        expect(res.status).toBe(429);
        expect(res.headers.get('retry-after')).toBe('1');
        await first;
      } finally {
        await gw.close();
      }
    });

    it('bounds the queue across replicas: a second replica refuses once the first filled the shared depth', async () => {
      const p = prefix();
      const env = { PROCESSOR_ENABLED: 'false', MAX_QUEUE_DEPTH: '30', QUEUE_PREFIX: p };
      const [a, b] = [await startGateway(redis.url, env), await startGateway(redis.url, env)];
      try {
        const fromA = Array.from({ length: 30 }, () => post(`${a.url}/infer`, body({ timeout_ms: 2000 })));
        await waitFor(async () => (await getJson(`${a.url}/health`)).body.pending_requests === 30);
        await sleep(300);
        const fromB = await post(`${b.url}/infer`, body());
        expect(fromB.status).toBe(429);
        expect(b.app.get(QueueDepth).snapshot()).toEqual({ stub_v1: { 2: 30 } });
        expect(statuses(await Promise.all(fromA))).toEqual({ 504: 30 });
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('answers a flood with 200s and 429s only, holding at most MAX_QUEUE_DEPTH rows per model', async () => {
      // A timeout far beyond any wait here: the accepted rows are served however slow the machine, so a 5xx could
      // only come from the flood itself.
      const gw = await startGateway(redis.url, { MODELS_DIR: heavyDir, THREAD_POOL_SIZE: '1', MAX_QUEUE_DEPTH: '100', BATCHER_TIMEOUT_S: '60', QUEUE_PREFIX: prefix() });
      try {
        const pending = gw.app.get(PendingRequests);
        const depth = gw.app.get(QueueDepth);
        let maxDepth = 0;
        const sampler = setInterval(() => {
          maxDepth = Math.max(maxDepth, Object.values(depth.snapshot().heavy ?? {}).reduce((a, b) => a + b, 0));
        }, 20);
        const answers = await Promise.all(Array.from({ length: 800 }, () => post(`${gw.url}/infer`, { model_id: 'heavy', payload: { input: EXAMPLE_INPUT } })));
        clearInterval(sampler);
        const byStatus = statuses(answers);
        expect(Object.keys(byStatus).sort()).toEqual(['200', '429']);
        expect(byStatus[429]).toBeGreaterThan(0);
        expect(maxDepth).toBeGreaterThan(0);
        expect(maxDepth).toBeLessThanOrEqual(100);
        expect(pending.size).toBe(0);
      } finally {
        await gw.close();
      }
    });
  });

  describe('deadlines', () => {
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
        await expectRemovedAndNeverRun(front, p);
      } finally {
        await front.close();
      }
    });

    it('skips rows already fetched whose deadline passed while more urgent work ran: they answer 504 and never run', async () => {
      const p = prefix();
      // Every urgent row is in Redis before any runs, queued by a replica that does not process: the doomed rows can
      // then only be fetched behind them, however fast this machine runs batches or the client sends requests.
      const front = await startGateway(redis.url, { MODELS_DIR: heavyDir, PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '60', QUEUE_PREFIX: p });
      let worker: TestGateway | undefined;
      try {
        const urgent = Array.from({ length: 320 }, () => post(`${front.url}/infer`, { model_id: 'heavy', priority: 1, payload: { input: EXAMPLE_INPUT } }));
        await waitFor(async () => front.app.get(QueueDepth).snapshot().heavy?.[1] === 320);
        // 320 urgent rows keep the one worker thread (one ONNX Runtime thread) busy for about 0.7 s on a fast machine,
        // measured from when the doomed rows are sent: far past their 100 ms. With 160 rows and two threads it was about
        // 0.3 s alone and, in a full run on a busy event loop, once in seven runs short enough for a doomed row to start.
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

  describe('client disconnect', () => {
    it('removes the queued work of a client that closed the connection, so it is never run', async () => {
      const p = prefix();
      const front = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', QUEUE_PREFIX: p });
      try {
        const controllers = Array.from({ length: 10 }, () => new AbortController());
        const sent = controllers.map((c) =>
          fetch(`${front.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()), signal: c.signal }).catch(
            (e: Error) => e.name,
          ),
        );
        await waitFor(async () => (await jobsInRedis(redis.url, p)) > 0);
        await waitFor(async () => (await getJson(`${front.url}/health`)).body.pending_requests === 10);
        for (const c of controllers) c.abort();
        expect(new Set(await Promise.all(sent))).toEqual(new Set(['AbortError']));
        await waitFor(async () => (await getJson(`${front.url}/health`)).body.pending_requests === 0, 2000);
        await expectRemovedAndNeverRun(front, p);
        // Counted apart from deadlines: an operator watching timeouts must not see clients that left.
        const metrics = await scrape(front.url);
        expect(sample(metrics, 'bales_rejected_total', { reason: 'client_closed' })).toBe(10);
        expect(sample(metrics, 'bales_rejected_total', { reason: 'timeout' })).toBe(0);
      } finally {
        await front.close();
      }
    });
  });

  describe('Redis outage', () => {
    it('answers 503 within about a second, reports not ready naming Redis, holds nothing, and serves again when Redis returns', async () => {
      const outage = await TestRedis.start();
      const gw = await startGateway(outage.url);
      try {
        expect((await post(`${gw.url}/infer`, body())).status).toBe(200);
        await outage.stop();
        const during = await Promise.all(Array.from({ length: 200 }, () => post(`${gw.url}/infer`, body())));
        expect(statuses(during)).toEqual({ 503: 200 });
        for (const a of during) expect(a.ms).toBeLessThan(1500);
        const ready = await getJson(`${gw.url}/health/ready`);
        expect(ready.status).toBe(503);
        expect(ready.body.error.redis).toMatchObject({ status: 'down' });
        expect((await getJson(`${gw.url}/health`)).body.pending_requests).toBe(0);

        await outage.resume();
        const back = performance.now();
        await waitFor(async () => (await post(`${gw.url}/infer`, body())).status === 200, 10000);
        const recoveredMs = performance.now() - back;
        console.log(`Redis outage: serving again ${recoveredMs.toFixed(0)} ms after redis-server answered`);
        expect(recoveredMs).toBeLessThan(5000);
        await waitFor(async () => (await getJson(`${gw.url}/health/ready`)).status === 200, 5000);
      } finally {
        await gw.close();
        await outage.stop();
      }
    });
  });

  describe('malformed bodies', () => {
    it('answers 2,500 generated malformed bodies with 4xx, never 5xx, while valid requests in between keep answering 200', async () => {
      const gw = await startGateway(redis.url, { QUEUE_PREFIX: prefix(), MAX_BODY_BYTES: '262144' });
      try {
        const bodies = fuzzBodies(2500, 42);
        const failures: string[] = [];
        let valid = 0;
        for (let i = 0; i < bodies.length; i += 25) {
          const chunk = bodies.slice(i, i + 25);
          const answers = await Promise.all([
            ...chunk.map((b) => sendRaw(`${gw.url}/infer`, b)),
            post(`${gw.url}/infer`, body()).then((a) => ({ ...a, valid: true })),
          ]);
          answers.forEach((a, j) => {
            if ('valid' in a) {
              if (a.status === 200) valid++;
              else failures.push(`valid request got ${a.status}`);
            } else if (a.status < 400 || a.status >= 500) failures.push(`${a.status} for ${describeBody(chunk[j])}`);
            else if (typeof a.body !== 'object' || typeof a.body.message !== 'string' || a.body.statusCode !== a.status) failures.push(`non-JSON error for ${describeBody(chunk[j])}`);
          });
        }
        expect(failures.slice(0, 10)).toEqual([]);
        expect(valid).toBe(100);
        expect((await getJson(`${gw.url}/health/live`)).status).toBe(200);
        expect((await getJson(`${gw.url}/health`)).body.pending_requests).toBe(0);
      } finally {
        await gw.close();
      }
    });
  });
});

interface RawBody {
  contentType: string;
  data: string | Buffer;
}

function describeBody(b: RawBody): string {
  const text = b.data.toString();
  return `${b.contentType} ${text.length > 120 ? text.slice(0, 120) + '…' : text}`;
}

async function sendRaw(url: string, b: RawBody): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': b.contentType }, body: b.data });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** Deterministic malformed bodies: wrong types, bad numbers, deep nesting, truncation, oversize, odd content types. */
function fuzzBodies(n: number, seed: number): RawBody[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const nested = (depth: number, leaf: string) => '['.repeat(depth) + leaf + ']'.repeat(depth);
  const nestedObj = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  const weird = (): unknown =>
    pick<() => unknown>([
      () => null,
      () => true,
      () => 'x'.repeat(Math.floor(rand() * 50)),
      () => -1e308 * 10,
      () => Math.floor(rand() * 1e6) - 5e5,
      () => [],
      () => ({}),
      () => [1, 'a', null],
      () => ({ input: 'NaN' }),
      () => Array.from({ length: Math.floor(rand() * 300) }, () => rand()),
      () => Array.from({ length: 128 }, (_, i) => (i === Math.floor(rand() * 128) ? pick<unknown>(['NaN', null, {}, [], 'Infinity', true]) : rand())),
      () => ({ __proto__: { polluted: true }, constructor: { prototype: { x: 1 } } }),
    ])();
  const fields = ['model_id', 'model_type', 'priority', 'payload', 'timeout_ms', 'extra', '__proto__', 'constructor'];
  const generators: (() => RawBody)[] = [
    // An object with random fields of random types.
    () => {
      const o: Record<string, unknown> = {};
      for (const f of fields) if (rand() < 0.5) o[f] = weird();
      return { contentType: 'application/json', data: JSON.stringify(o) };
    },
    // A plausible request with one field broken (null is absent, so not among the values).
    () => {
      const o: Record<string, unknown> = { model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT } };
      const broken = pick<unknown>([true, [], {}, [1, 'a', null], { input: 'NaN' }, 'x'.repeat(Math.floor(rand() * 50) + 1), -7, 0.5, 1e12]);
      o[pick(['model_id', 'priority', 'payload', 'timeout_ms', 'model_type'])] = broken;
      return { contentType: 'application/json', data: JSON.stringify(o) };
    },
    // Inputs that are not 128 finite numbers, written as raw JSON so NaN and huge literals survive.
    () => {
      const items = Array.from({ length: 128 }, () => String(rand()));
      items[Math.floor(rand() * 128)] = pick(['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '"1"', 'null', '[]', '{}', '0x10', 'true', '[0.5]']);
      return { contentType: 'application/json', data: `{"model_id":"stub_v1","payload":{"input":[${items.join(',')}]}}` };
    },
    // Deeply nested arrays and objects in the payload, or as the whole body.
    () => ({ contentType: 'application/json', data: `{"payload":{"input":${nested(Math.floor(rand() * 5000) + 1, '0.5')}}}` }),
    () => ({ contentType: 'application/json', data: `{"payload":${nestedObj(Math.floor(rand() * 5000) + 1)}}` }),
    () => ({ contentType: 'application/json', data: nested(Math.floor(rand() * 20000) + 1, '1') }),
    // Valid JSON, truncated anywhere.
    () => {
      const full = JSON.stringify({ model_id: 'stub_v1', priority: 1, payload: { input: EXAMPLE_INPUT } });
      return { contentType: 'application/json', data: full.slice(0, Math.floor(rand() * (full.length - 1))) };
    },
    // Top-level values that are not objects.
    () => ({ contentType: 'application/json', data: pick(['null', '1', '"str"', '[]', 'true', '', ' ', '[{}]', '{}', '{"payload":null}']) }),
    // Random bytes, including invalid UTF-8.
    () => ({ contentType: 'application/json', data: Buffer.from(Array.from({ length: Math.floor(rand() * 200) + 1 }, () => Math.floor(rand() * 256))) }),
    // Over MAX_BODY_BYTES.
    () => ({ contentType: 'application/json', data: `{"payload":{"input":[${'0.1,'.repeat(70000)}0.1]}}` }),
    // Bodies that are not JSON at all.
    () => ({ contentType: pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/xml']), data: 'payload=1' }),
    // Huge numbers of keys, and long strings.
    () => ({ contentType: 'application/json', data: JSON.stringify({ payload: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])) }) }),
    () => ({ contentType: 'application/json', data: JSON.stringify({ model_id: 'a'.repeat(100000), payload: { input: EXAMPLE_INPUT } }) }),
    // Keys that name Object's own properties, with values class-transformer copies onto the DTO.
    () => ({ contentType: 'application/json', data: `{"constructor":${pick(['null', '1', '"x"', '{}', '[]'])},"payload":{"input":[1]}}` }),
    // Duplicate keys and unicode escapes.
    () => ({ contentType: 'application/json', data: '{"payload":{"input":[1]},"payload":{"input":"\\u0000\\ud800"}}' }),
  ];
  return Array.from({ length: n }, () => pick(generators)());
}
