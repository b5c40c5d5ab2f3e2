import { join } from 'node:path';
import { ROOT, getJson, ownGateway, post } from './support/gateway';
import { promtool, sample, scrape } from './support/observability';
import { EXAMPLE_INPUT } from './support/example-input';

const infer = (input: unknown, extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', payload: { input }, ...extra });

/** How much each sample grew while `act` ran. */
async function growth(url: string, act: () => Promise<unknown>, ...probes: [string, Record<string, string>?][]): Promise<number[]> {
  const before = await scrape(url);
  await act();
  const after = await scrape(url);
  return probes.map(([name, labels]) => sample(after, name, labels) - sample(before, name, labels));
}

/** The upper bounds of a histogram's buckets, +Inf left out. */
const bounds = (text: string, histogram: string) =>
  [...text.matchAll(new RegExp(`^${histogram}_bucket\\{le="([^"]+)"\\}`, 'gm'))].map((m) => Number(m[1])).filter(Number.isFinite);

type TimeUnit = 'seconds' | 'ms';
const TIME_HISTOGRAMS = (unit: TimeUnit) => [`bales_request_latency_${unit}`, `bales_queue_wait_${unit}`, `bales_inference_${unit}`];

/** Every time histogram has the same buckets, at least 15 of them from 1 to 50 ms. */
async function expectBucketsResolving1To50Ms(url: string, unit: TimeUnit): Promise<void> {
  const text = await scrape(url);
  const msPerUnit = unit === 'seconds' ? 1000 : 1;
  const [latency, ...others] = TIME_HISTOGRAMS(unit).map((name) => bounds(text, name).map((b) => b * msPerUnit));
  for (const ms of [1, 2, 3, 4, 5, 10, 20, 30, 40, 50]) expect(latency).toContainEqual(expect.closeTo(ms, 9));
  expect(latency.filter((ms) => ms >= 1 && ms <= 50).length).toBeGreaterThanOrEqual(15);
  for (const b of others) expect(b).toEqual(latency);
}

/**
 * Serves five requests one after another and holds the time histograms' sums, read back in milliseconds, to what the
 * answers themselves carry: `latency_ms` and `queued_ms`. A sum observed in the wrong unit is off by a factor of 1000.
 */
async function expectSumsMatchAnswers(url: string, unit: TimeUnit): Promise<void> {
  const msPerUnit = unit === 'seconds' ? 1000 : 1;
  let latencyMs = 0;
  let queuedMs = 0;
  const [latency, queueWait, inference] = (
    await growth(
      url,
      async () => {
        for (let i = 0; i < 5; i++) {
          const answer = await post(`${url}/infer`, infer(EXAMPLE_INPUT));
          expect(answer.status).toBe(200);
          latencyMs += answer.body.latency_ms;
          queuedMs += answer.body.queued_ms;
        }
      },
      ...TIME_HISTOGRAMS(unit).map((name): [string] => [`${name}_sum`]),
    )
  ).map((sum) => sum * msPerUnit);
  expect(queuedMs).toBeGreaterThan(0);
  // queued_ms is the observed wait rounded to the microsecond.
  expect(queueWait).toBeCloseTo(queuedMs, 2);
  // The histogram times each request to the end of its reply, a little past the moment latency_ms was stamped.
  expect(latency).toBeGreaterThanOrEqual(latencyMs - 0.01);
  expect(latency).toBeLessThan(latencyMs + 100);
  // One request at a time: each batch ran inside its one request's latency.
  expect(inference).toBeGreaterThan(0);
  expect(inference).toBeLessThan(latencyMs);
}

describe('GET /metrics (real HTTP, Redis and ONNX Runtime)', () => {
  // Every request queued: this in-process client sends a burst slowly enough that an idle replica could run each
  // request alone by direct dispatch (test/direct-dispatch.e2e-spec.ts), and the batch metrics need shared batches.
  const own = ownGateway({ MAX_BODY_BYTES: '65536', DIRECT_DISPATCH: 'false' });

  it('counts every POST /infer answer by model_id and status, and observes its latency', async () => {
    const [ok, invalid, unknownModel, badJson, latencies] = await growth(
      own.gw.url,
      async () => {
        for (let i = 0; i < 5; i++) expect((await post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT))).status).toBe(200);
        expect((await post(`${own.gw.url}/infer`, infer([1, 2]))).status).toBe(422);
        expect((await post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT, { model_id: 'made_up' }))).status).toBe(404);
        expect((await post(`${own.gw.url}/infer`, '{"payload": ')).status).toBe(400);
      },
      ['bales_requests_total', { model_id: 'stub_v1', status: '200' }],
      ['bales_requests_total', { model_id: 'stub_v1', status: '422' }],
      // A model nobody registered is not a label value of its own, so clients cannot grow the series.
      ['bales_requests_total', { model_id: 'unknown', status: '404' }],
      ['bales_requests_total', { model_id: 'stub_v1', status: '400' }],
      ['bales_request_latency_seconds_count'],
    );
    expect({ ok, invalid, unknownModel, badJson, latencies }).toEqual({ ok: 5, invalid: 1, unknownModel: 1, badJson: 1, latencies: 8 });
  });

  it('exports latency, queue wait and inference time in seconds, with buckets resolving 1 to 50 ms', async () => {
    await expectBucketsResolving1To50Ms(own.gw.url, 'seconds');
    expect(await scrape(own.gw.url)).not.toMatch(/^bales_\w+_ms/m);
  });

  it('observes seconds: the sums agree with the latency_ms and queued_ms of the answers', async () => {
    await expectSumsMatchAnswers(own.gw.url, 'seconds');
  });

  it('counts Open Inference Protocol (V2) infer requests under the model named in their path', async () => {
    const v2 = (model: string) => post(`${own.gw.url}/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [1, 128], datatype: 'FP32', data: EXAMPLE_INPUT }] });
    const growthOf = await growth(
      own.gw.url,
      async () => {
        expect((await v2('stub_v1')).status).toBe(200);
        expect((await v2('made_up')).status).toBe(404);
      },
      ['bales_requests_total', { model_id: 'stub_v1', status: '200' }],
      ['bales_requests_total', { model_id: 'unknown', status: '404' }],
      ['bales_request_latency_seconds_count'],
    );
    expect(growthOf).toEqual([1, 1, 2]);
  });

  it('records each batch it runs: its size, its inference time, and every row’s wait in the queue', async () => {
    // A V2 tensor of 16 rows travels as one job and runs as one batch, however slowly a loaded host serves it.
    const data = Array.from({ length: 16 }, () => EXAMPLE_INPUT).flat();
    const [rows, batches, inferences, waits] = await growth(
      own.gw.url,
      async () => {
        const answer = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { inputs: [{ name: 'input', shape: [16, 128], datatype: 'FP32', data }] });
        expect(answer.status).toBe(200);
      },
      ['bales_batch_size_sum'],
      ['bales_batch_size_count'],
      ['bales_inference_seconds_count'],
      ['bales_queue_wait_seconds_count'],
    );
    expect(rows).toBe(16);
    expect(waits).toBe(16);
    expect(inferences).toBe(batches);
    expect(batches).toBe(1);
    const text = await scrape(own.gw.url);
    expect(sample(text, 'bales_inference_seconds_sum')).toBeGreaterThan(0);
  });

  it('counts the worker threads and the seconds they spend running batches, no less than the inference they ran', async () => {
    const data = Array.from({ length: 16 }, () => EXAMPLE_INPUT).flat();
    const [busy, inference] = await growth(
      own.gw.url,
      async () => {
        for (let i = 0; i < 5; i++) expect((await post(`${own.gw.url}/v2/models/stub_v1/infer`, { inputs: [{ name: 'input', shape: [16, 128], datatype: 'FP32', data }] })).status).toBe(200);
      },
      ['bales_worker_busy_seconds_total'],
      ['bales_inference_seconds_sum'],
    );
    // A batch keeps its thread busy from its hand-over until its answer is back, which spans its inference.
    expect(inference).toBeGreaterThan(0);
    expect(busy).toBeGreaterThanOrEqual(inference);
    expect(busy).toBeLessThan(5);
    expect(sample(await scrape(own.gw.url), 'bales_worker_threads')).toBe(2);
  });

  it('counts every rejection once, by reason', async () => {
    const growthOf = await growth(
      own.gw.url,
      async () => {
        expect((await post(`${own.gw.url}/infer`, infer([1, 2]))).status).toBe(422);
        expect((await post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT, { model_id: 'made_up' }))).status).toBe(404);
        expect((await post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT, { priority: 0 }))).status).toBe(400);
        expect((await post(`${own.gw.url}/infer`, 'hello', { 'content-type': 'text/plain' })).status).toBe(415);
        expect((await post(`${own.gw.url}/infer`, infer(Array(20000).fill(0.5)))).status).toBe(413);
      },
      ['bales_rejected_total', { reason: 'invalid_input' }],
      ['bales_rejected_total', { reason: 'model_not_found' }],
      ['bales_rejected_total', { reason: 'bad_request' }],
      ['bales_rejected_total', { reason: 'unsupported_media_type' }],
      ['bales_rejected_total', { reason: 'payload_too_large' }],
    );
    expect(growthOf).toEqual([1, 1, 1, 1, 1]);
  });

  it("exports Node's process metrics", async () => {
    const text = await scrape(own.gw.url);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toMatch(new RegExp(`^${name} `, 'm'));
    }
  });

  it('counts model reloads by model_id and result', async () => {
    const reload = (id: string, weights: string) => post(`${own.gw.url}/models/${id}/reload`, { weights_path: join(ROOT, weights) });
    const growthOf = await growth(
      own.gw.url,
      async () => {
        expect((await reload('stub_v1', 'models/stub_v2.onnx')).status).toBe(200);
        expect((await reload('stub_v1', 'models/missing.onnx')).status).toBe(404);
        expect((await reload('made_up', 'models/stub_v2.onnx')).status).toBe(404);
      },
      ['bales_model_reloads_total', { model_id: 'stub_v1', result: 'ok' }],
      ['bales_model_reloads_total', { model_id: 'stub_v1', result: 'failed' }],
      ['bales_model_reloads_total', { model_id: 'unknown', result: 'failed' }],
    );
    expect(growthOf).toEqual([1, 1, 1]);
  });

  it('passes promtool check metrics without a single finding', async () => {
    expect(promtool(await scrape(own.gw.url))).toEqual({ status: 0, problems: [] });
  });
});

describe('METRICS_TIME_UNIT=ms, for dashboards built against the original BALES', () => {
  const own = ownGateway({ METRICS_TIME_UNIT: 'ms' });

  it("exports the original's three histograms: its names, help texts and millisecond buckets", async () => {
    await expectBucketsResolving1To50Ms(own.gw.url, 'ms');
    const text = await scrape(own.gw.url);
    expect(text).toContain('# HELP bales_request_latency_ms End-to-end latency of inference requests inside the gateway, in milliseconds\n');
    expect(text).toContain('# HELP bales_queue_wait_ms Time each row waited from enqueueing until its batch started, in milliseconds\n');
    expect(text).toContain('# HELP bales_inference_ms Time ONNX Runtime took to run one batch, in milliseconds\n');
    expect(text).not.toMatch(/^bales_\w+_seconds/m);
  });

  it('observes milliseconds: the sums agree with the latency_ms and queued_ms of the answers', async () => {
    await expectSumsMatchAnswers(own.gw.url, 'ms');
  });

  it('fails promtool check metrics only on the abbreviated units in those three names and the worker busy time', async () => {
    const { status, problems } = promtool(await scrape(own.gw.url));
    // promtool exits 1 on text it cannot parse and 3 on lint findings only.
    expect(status).toBe(3);
    expect(problems.sort()).toEqual(
      ['bales_inference_ms', 'bales_queue_wait_ms', 'bales_request_latency_ms', 'bales_worker_busy_ms_total'].map((n) => `${n} metric names should not contain abbreviated units`),
    );
  });
});

describe('bales_pending_requests and timeouts', () => {
  // Nothing processes this replica's work, so its requests stay pending until their deadline.
  const own = ownGateway({ PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '1.5' });

  it('reports the requests this replica holds and the rows queued per priority, then counts the 504s once their deadline passes', async () => {
    const answers = Promise.all([
      ...Array.from({ length: 3 }, () => post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT, { priority: 2 }))),
      post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT, { priority: 1 })),
    ]);
    // Queue depths are read from Redis every 100 ms.
    await new Promise((r) => setTimeout(r, 400));
    const during = await scrape(own.gw.url);
    expect(sample(during, 'bales_pending_requests')).toBe(4);
    expect(sample(during, 'bales_queue_depth', { model_id: 'stub_v1', priority: '2' })).toBe(3);
    expect(sample(during, 'bales_queue_depth', { model_id: 'stub_v1', priority: '1' })).toBe(1);
    expect((await getJson(`${own.gw.url}/health`)).body).toMatchObject({ pending_requests: 4, queue_depths: { stub_v1: { '1': 1, '2': 3 } } });
    expect((await answers).map((a) => a.status)).toEqual([504, 504, 504, 504]);
    const after = await scrape(own.gw.url);
    expect(sample(after, 'bales_pending_requests')).toBe(0);
    expect(sample(after, 'bales_rejected_total', { reason: 'timeout' })).toBe(4);
    expect(sample(after, 'bales_requests_total', { model_id: 'stub_v1', status: '504' })).toBe(4);
  });
});

describe('ENABLE_PROMETHEUS=false', () => {
  const own = ownGateway({ ENABLE_PROMETHEUS: 'false' });

  it('serves no /metrics, while inference works as before', async () => {
    expect((await fetch(`${own.gw.url}/metrics`)).status).toBe(404);
    expect((await post(`${own.gw.url}/infer`, infer(EXAMPLE_INPUT))).status).toBe(200);
  });
});
