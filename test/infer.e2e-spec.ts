import { InferenceSession, Tensor } from 'onnxruntime-node';
import { join } from 'node:path';
import { EXAMPLE_INPUT } from './support/example-input';
import { ROOT, TestGateway, UUID, getJson, ownGateway, post, startGateway, waitFor } from './support/gateway';

const original = (input: unknown, extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', model_type: 'classification', priority: 2, payload: { input }, ...extra });

describe('POST /infer (real HTTP, Redis, BullMQ and ONNX Runtime)', () => {
  const own = ownGateway({ MAX_BODY_BYTES: '65536' });

  it('answers the original contract with the row ONNX Runtime computes for it', async () => {
    const res = await post(`${own.gw.url}/infer`, original(EXAMPLE_INPUT));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      request_id: expect.stringMatching(UUID),
      model_id: 'stub_v1',
      model_version: '1',
      result: { label: expect.any(Number), confidence: expect.any(Number) },
      latency_ms: expect.any(Number),
      batch_size: 1,
      queued_ms: expect.any(Number),
    });
    const session = await InferenceSession.create(join(ROOT, 'models/stub_v1/model.onnx'));
    const probs = Array.from((await session.run({ input: new Tensor('float32', Float32Array.from(EXAMPLE_INPUT), [1, 128]) })).probabilities.data as Float32Array);
    const label = probs.indexOf(Math.max(...probs));
    expect(res.body.result).toEqual({ label, confidence: expect.closeTo(probs[label], 6) });
    expect(res.body.latency_ms).toBeGreaterThanOrEqual(res.body.queued_ms);
  });

  it('defaults model_id to DEFAULT_MODEL_ID and priority to 2', async () => {
    const res = await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
    expect(res.status).toBe(200);
    expect(res.body.model_id).toBe('stub_v1');
  });

  it('puts queued requests into shared batches and answers each with its own row', async () => {
    // How many rows meet in a batch depends on how fast they arrive, and this client is slower on a loaded
    // machine. So the requests are queued first, by a replica that does not process, and then a replica with one
    // worker thread takes them all at once.
    const env = { QUEUE_PREFIX: 'batching', THREAD_POOL_SIZE: '1' };
    const front = await startGateway(own.redis.url, { ...env, PROCESSOR_ENABLED: 'false' });
    let worker: TestGateway | undefined;
    try {
      const inputs = Array.from({ length: 512 }, (_, i) => EXAMPLE_INPUT.map((v, j) => (j === i % 128 ? v + 5 : v)));
      const sent = inputs.map((input) => post(`${front.url}/infer`, original(input)));
      await waitFor(async () => (await getJson(`${front.url}/health`)).body.pending_requests === 512);
      worker = await startGateway(own.redis.url, env);
      const answers = await Promise.all(sent);
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(new Set(answers.map((a) => a.body.request_id)).size).toBe(512);
      expect(Math.max(...answers.map((a) => a.body.batch_size))).toBe(32);
      // Each row is its own: the same input always gets the same answer, whatever batch carried it.
      const inFullBatch = answers.findIndex((a) => a.body.batch_size === 32);
      for (const i of [inFullBatch, inFullBatch + 1, 7]) {
        const single = await post(`${own.gw.url}/infer`, original(inputs[i]));
        expect(single.body.batch_size).toBe(1);
        expect(answers[i].body.result).toEqual({ label: single.body.result.label, confidence: expect.closeTo(single.body.result.confidence, 5) });
      }
    } finally {
      await Promise.all([front.close(), worker?.close()]);
    }
  });

  describe('errors: a JSON body {statusCode, error, message} naming the problem, never a stack', () => {
    it.each([
      ['invalid JSON', 400, '{"payload": ', /^the request body is not valid JSON: .*end of JSON input/],
      ['an empty body', 400, '', /^the request body is empty; send a JSON object$/],
      ['a __proto__ key', 400, `{"__proto__": {"polluted": true}, "payload": {"input": [${EXAMPLE_INPUT}]}}`, /must not hold a __proto__ key/],
      ['a constructor key holding prototype', 400, `{"payload": {"input": [${EXAMPLE_INPUT}], "constructor": {"prototype": {}}}}`, /nor a constructor key holding prototype/],
      ['a body that is not an object', 400, '[1, 2, 3]', /JSON object/],
      ['a missing payload', 400, { model_id: 'stub_v1' }, /payload is required/],
      ['an unknown field', 400, { payload: { input: EXAMPLE_INPUT }, colour: 'red' }, /colour/],
      ['a priority out of range', 400, { payload: { input: EXAMPLE_INPUT }, priority: 9 }, /priority must be an integer from 1 to 3/],
      ['a priority of the wrong type', 400, { payload: { input: EXAMPLE_INPUT }, priority: 'high' }, /priority/],
      ['a model_type that is no task', 400, { payload: { input: EXAMPLE_INPUT }, model_type: 'poetry' }, /model_type/],
      ['3 floats instead of 128', 422, original([0.1, 0.2, 0.3]), /payload\.input: expected float32\[128\] \(128 values\), got 3 values/],
      ['a non-number in the input', 422, original([...EXAMPLE_INPUT.slice(0, 127), 'x']), /payload\.input\[127\]: expected a finite number, got "x"/],
      ['an infinite number', 422, `{"payload": {"input": [${[...EXAMPLE_INPUT.slice(0, 127), '1e999'].join(',')}]}}`, /payload\.input\[127\]: expected a finite number, got Infinity/],
      ['a null in the input', 422, original([...EXAMPLE_INPUT.slice(0, 127), null]), /expected a finite number, got null/],
      ['an input that is not an array', 422, original('0.1,0.2'), /payload\.input: expected float32\[128\] as an array/],
      ['a model_type that does not match the model', 422, original(EXAMPLE_INPUT, { model_type: 'regression' }), /does not match/],
      ['an unknown model', 404, original(EXAMPLE_INPUT, { model_id: 'nope' }), /model 'nope' is not registered/],
      ['a body over MAX_BODY_BYTES', 413, original(Array(20000).fill(0.123456)), /too large/],
    ])('%s -> %i', async (_case, status, body, message) => {
      const res = await post(`${own.gw.url}/infer`, body);
      expect(res.status).toBe(status);
      expect(res.body).toMatchObject({ statusCode: status, error: expect.any(String), message: expect.stringMatching(message) });
      expect(JSON.stringify(res.body)).not.toMatch(/\bat \S+ \(|\.ts:\d+/);
    });

    it.each(['text/plain', 'application/x-www-form-urlencoded'])('415 for a body that is not JSON: %s', async (type) => {
      const res = await post(`${own.gw.url}/infer`, 'input=1', { 'content-type': type });
      expect(res.status).toBe(415);
      expect(res.body).toMatchObject({ statusCode: 415, error: 'Unsupported Media Type', message: `the request body must be application/json, got content-type '${type}'` });
    });

    it('carries request_id on errors found after the request was identified', async () => {
      const res = await post(`${own.gw.url}/infer`, original([1, 2, 3]));
      expect(res.body.request_id).toMatch(UUID);
    });

    it('keeps serving valid requests after every bad one', async () => {
      const res = await post(`${own.gw.url}/infer`, original(EXAMPLE_INPUT));
      expect(res.status).toBe(200);
      expect((await getJson(`${own.gw.url}/health`)).body.pending_requests).toBe(0);
    });
  });
});
