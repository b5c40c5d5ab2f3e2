import { Queue } from 'bullmq';
import { PendingRequests, QueueDepth, versionQueue } from '@bales/queue';
import { EXAMPLE_INPUT } from './support/example-input';
import { getJson, post, sleep, startGateway, statuses, waitFor } from './support/gateway';
import { heavyModelsDir } from './support/models';
import { scrape, sample } from './support/observability';
import { expectRemovedAndNeverRun, jobsInRedis } from './support/queued-work';
import { TestRedis } from './support/redis-server';

const body = (extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT }, ...extra });

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
        const queue = new Queue(versionQueue('stub_v1', '1'), { connection: { url: redis.url }, prefix: p });
        const rows = (await queue.getJobs(['prioritized', 'wait'])).reduce((n, job) => n + job.data.r.length, 0);
        await queue.close();
        expect(rows).toBe(40);

        const answers = await Promise.all(sent);
        expect(statuses(answers)).toEqual({ 429: 160, 504: 40 });
        const afterExpiry = await fetch(`${gw.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()) });
        // The 40 expired rows were removed from Redis and from the count, so room is back at once: the request is
        // accepted, and with nothing processing it answers 504 at its deadline, not 429.
        expect(afterExpiry.status).toBe(504);
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
        await expectRemovedAndNeverRun(redis.url, front, p);
        // Counted apart from deadlines: an operator watching timeouts must not see clients that left.
        const metrics = await scrape(front.url);
        expect(sample(metrics, 'bales_rejected_total', { reason: 'client_closed' })).toBe(10);
        expect(sample(metrics, 'bales_rejected_total', { reason: 'timeout' })).toBe(0);
      } finally {
        await front.close();
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
