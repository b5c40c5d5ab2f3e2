import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { TestGateway, getJson, ownGateway, post, startGateway, waitFor } from './support/gateway';
import { runDirect, testRepository } from './support/models';
import { TestRedis } from './support/redis-server';
import { EXAMPLE_INPUT } from './support/example-input';

const TOKEN = 'test-admin-token';
const auth = { authorization: `Bearer ${TOKEN}` };

async function del(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'DELETE', headers });
  return { status: res.status, body: await res.json() };
}

describe('any ONNX model, and the Models API (real HTTP, Redis and ONNX Runtime)', () => {
  const dir = testRepository();
  const own = ownGateway({ MODELS_DIR: dir, ADMIN_TOKEN: TOKEN });

  describe('model shapes, each compared with ONNX Runtime run directly', () => {
    it('takes a multi-input model payload keyed by input name, with int64 and float32 inputs', async () => {
      const ids = [1, 2, 3, 40];
      const x = [0.5, -1.25, 2, 0.125];
      const res = await post(`${own.gw.url}/infer`, { model_id: 'multi_input', payload: { ids, x } });
      expect(res.status).toBe(200);
      const direct = await runDirect(join(dir, 'multi_input/model.onnx'), {
        ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, 4]),
        x: new Tensor('float32', Float32Array.from(x), [1, 4]),
      });
      expect(res.body.result).toEqual({ values: direct.sum.data });
    });

    it('serves a model with a fixed batch dimension of 1 one request per run, through the same queue', async () => {
      const inputs = Array.from({ length: 6 }, (_, i) => Array.from({ length: 8 }, (_, j) => Math.cos(i + j)));
      const answers = await Promise.all(inputs.map((input) => post(`${own.gw.url}/infer`, { model_id: 'fixed_one', priority: 1, payload: { input } })));
      for (let i = 0; i < inputs.length; i++) {
        expect(answers[i].status).toBe(200);
        expect(answers[i].body.batch_size).toBe(1);
        const probs = (await runDirect(join(dir, 'fixed_one/model.onnx'), { input: new Tensor('float32', Float32Array.from(inputs[i]), [1, 8]) })).probabilities.data;
        const label = probs.indexOf(Math.max(...probs));
        expect(answers[i].body.result).toEqual({ label, confidence: expect.closeTo(probs[label], 5), label_name: ['cat', 'dog', 'bird'][label] });
      }
    });

    it('batches a dynamic inner dimension only with requests of the same shape', async () => {
      const short = [1, 2, 3];
      const long = [1, 2, 3, 4, 10];
      const answers = await Promise.all(
        Array.from({ length: 16 }, (_, i) => post(`${own.gw.url}/infer`, { model_id: 'dynamic_seq', payload: { input: i % 2 ? long : short } })),
      );
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      answers.forEach((a, i) => expect(a.body.result.values[0]).toBeCloseTo(i % 2 ? 4 : 2, 5));
      const direct = await runDirect(join(dir, 'dynamic_seq/model.onnx'), { tokens: new Tensor('float32', Float32Array.from(long), [1, 5]) });
      expect(answers[1].body.result.values).toEqual(direct.mean.data);
    });

    it('answers an embedding model with {embedding}', async () => {
      const input = Array.from({ length: 16 }, (_, i) => i / 16);
      const res = await post(`${own.gw.url}/infer`, { model_id: 'embedder', model_type: 'embedding', payload: { input } });
      const direct = await runDirect(join(dir, 'embedder/model.onnx'), { features: new Tensor('float32', Float32Array.from(input), [1, 16]) });
      expect(res.status).toBe(200);
      expect(res.body.result.embedding).toHaveLength(8);
      res.body.result.embedding.forEach((v: number, i: number) => expect(v).toBeCloseTo(direct.embedding.data[i], 5));
    });

    it('answers a raw model with every output, shape and data, from a nested input', async () => {
      const res = await post(`${own.gw.url}/infer`, { model_id: 'two_outputs', payload: { input: [[1, -2], [-3, 4]] } });
      expect(res.status).toBe(200);
      expect(res.body.result).toEqual({ outputs: { relu: { shape: [2, 2], data: [1, 0, 0, 4] }, neg: { shape: [2, 2], data: [-1, 2, 3, -4] } } });
    });

    it.each([
      ['a missing input', { ids: [1, 2, 3, 4] }, /payload\.x: required, expected float32\[4\]/],
      ['a fraction in an int64 input', { ids: [1, 2, 3.5, 4], x: [0, 0, 0, 0] }, /payload\.ids\[2\]: expected an int64 integer, got 3\.5/],
      ['the wrong shape', { ids: [[1, 2], [3, 4]], x: [0, 0, 0, 0] }, /payload\.ids: expected int64\[4\], got an array of shape \[2, 2\]/],
      ['an unknown input name', { ids: [1, 2, 3, 4], x: [0, 0, 0, 0], y: [1] }, /payload\.y: unknown input; this model takes ids \(int64\[4\]\), x \(float32\[4\]\)/],
    ])('answers 422 naming the input, the expected shape and type, and what came: %s', async (_case, payload, message) => {
      const res = await post(`${own.gw.url}/infer`, { model_id: 'multi_input', payload });
      expect(res.status).toBe(422);
      expect(res.body.message).toMatch(message);
    });

    it('refuses a model_type that does not match the model task', async () => {
      const res = await post(`${own.gw.url}/infer`, { model_id: 'embedder', model_type: 'classification', payload: { input: Array(16).fill(0) } });
      expect(res.status).toBe(422);
    });
  });

  describe('Models API', () => {
    it('lists every model with its signature from the ONNX file, version, state and counters', async () => {
      const res = await getJson(`${own.gw.url}/models`);
      expect(res.status).toBe(200);
      const ids = res.body.map((m: { id: string }) => m.id);
      expect(ids).toEqual(expect.arrayContaining(['stub_v1', 'multi_input', 'fixed_one', 'dynamic_seq', 'embedder', 'two_outputs']));
      const multi = res.body.find((m: { id: string }) => m.id === 'multi_input');
      expect(multi).toMatchObject({
        version: '1',
        task: 'regression',
        maxBatchSize: 32,
        state: 'ready',
        loadedAt: expect.any(String),
        requestsServed: expect.any(Number),
        signature: {
          inputs: [
            { name: 'ids', type: 'int64', shape: ['batch', 4] },
            { name: 'x', type: 'float32', shape: ['batch', 4] },
          ],
          outputs: [{ name: 'sum', type: 'float32', shape: ['batch', 4] }],
        },
      });
      expect(res.body.find((m: { id: string }) => m.id === 'fixed_one').maxBatchSize).toBe(1);
      expect((await getJson(`${own.gw.url}/models/stub_v1`)).body.id).toBe('stub_v1');
      expect((await getJson(`${own.gw.url}/models/nope`)).status).toBe(404);
    });

    it('registers a model at runtime (201), refuses the same id again (409), and serves it while others keep serving', async () => {
      const created = await post(`${own.gw.url}/models`, { model_id: 'heavy', weights_path: 'extra/heavy.onnx', task: 'classification' }, auth);
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ id: 'heavy', version: '1', task: 'classification', state: 'ready' });
      const again = await post(`${own.gw.url}/models`, { model_id: 'heavy', weights_path: 'extra/heavy.onnx', task: 'classification' }, auth);
      expect(again.status).toBe(409);
      const [heavy, stub] = await Promise.all([
        post(`${own.gw.url}/infer`, { model_id: 'heavy', payload: { input: EXAMPLE_INPUT } }),
        post(`${own.gw.url}/infer`, { model_id: 'stub_v1', payload: { input: EXAMPLE_INPUT } }),
      ]);
      expect([heavy.status, stub.status]).toEqual([200, 200]);
    });

    it('hot-swaps a model and answers with the new version; the response names both versions and the load time', async () => {
      const before = await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
      const swap = await post(`${own.gw.url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' }, auth);
      expect(swap.status).toBe(200);
      expect(swap.body).toEqual({ model_id: 'stub_v1', old_version: before.body.model_version, new_version: String(Number(before.body.model_version) + 1), load_ms: expect.any(Number), replicas: [{ replica_id: expect.any(String), load_ms: expect.any(Number) }] });
      const after = await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
      expect(after.body.model_version).toBe(swap.body.new_version);
      expect(after.body.result).not.toEqual(before.body.result);
    });
  });

  describe('safety: nothing outside MODELS_DIR is opened, and the old version keeps serving', () => {
    it.each([
      ['a path escaping with ../', { weights_path: '../../../etc/passwd' }, 400],
      ['an absolute path outside', { weights_path: '/etc/hostname' }, 400],
      ['a symlink pointing outside', { weights_path: 'extra/escape.onnx' }, 400],
      ['a missing file', { weights_path: 'extra/missing.onnx' }, 404],
      ['a file that is not ONNX', { weights_path: 'extra/garbage.onnx' }, 422],
      ['another signature', { weights_path: 'extra/wide.onnx' }, 409],
      ['a body without weights_path', {}, 400],
    ])('reload with %s -> %i', async (_case, body, status) => {
      const { version } = (await getJson(`${own.gw.url}/models/stub_v1`)).body;
      const res = await post(`${own.gw.url}/models/stub_v1/reload`, body, auth);
      expect(res.status).toBe(status);
      expect(res.body.message).toEqual(expect.any(String));
      expect((await getJson(`${own.gw.url}/models/stub_v1`)).body.version).toBe(version);
      expect((await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).body.model_version).toBe(version);
    });

    it('registers nothing from outside MODELS_DIR either', async () => {
      const res = await post(`${own.gw.url}/models`, { model_id: 'sneaky', weights_path: 'extra/escape.onnx', task: 'raw' }, auth);
      expect(res.status).toBe(400);
      expect((await getJson(`${own.gw.url}/models/sneaky`)).status).toBe(404);
    });

    it('accepts a signature change only when the body allows it', async () => {
      await post(`${own.gw.url}/models`, { model_id: 'changing', weights_path: 'stub_v2.onnx', task: 'classification' }, auth);
      const res = await post(`${own.gw.url}/models/changing/reload`, { weights_path: 'extra/wide.onnx', allow_signature_change: true }, auth);
      expect(res.status).toBe(200);
      expect((await getJson(`${own.gw.url}/models/changing`)).body.signature.inputs[0].shape).toEqual(['batch', 256]);
    });

    it.each([
      ['POST /models', () => post(`${own.gw.url}/models`, { model_id: 'x', weights_path: 'stub_v2.onnx', task: 'raw' })],
      ['POST /models/:id/reload', () => post(`${own.gw.url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' })],
      ['DELETE /models/:id', () => del(`${own.gw.url}/models/stub_v1`)],
      ['a wrong token', () => del(`${own.gw.url}/models/stub_v1`, { authorization: 'Bearer nope' })],
    ])('answers 401 without the admin token: %s', async (_case, call) => {
      const res = await call();
      expect(res.status).toBe(401);
      expect(res.body.statusCode).toBe(401);
      expect((await getJson(`${own.gw.url}/models/stub_v1`)).status).toBe(200);
    });
  });
});

describe('unloading a model while work for it is queued', () => {
  let redis: TestRedis;
  let front: TestGateway;

  beforeAll(async () => {
    redis = await TestRedis.start();
    // This replica only enqueues, so its requests stay queued until a processing replica starts.
    front = await startGateway(redis.url, { PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '30' });
  });
  afterAll(async () => {
    await front?.close();
    await redis?.stop();
  });

  it('stops taking requests at once (404), finishes those already accepted, then releases the model', async () => {
    const accepted = Array.from({ length: 30 }, () => post(`${front.url}/infer`, { payload: { input: EXAMPLE_INPUT } }));
    while ((await getJson(`${front.url}/models/stub_v1`)).body.requestsPending < 30) await new Promise((r) => setTimeout(r, 5));

    let unloaded: { status: number; body: any } | undefined;
    const unloading = del(`${front.url}/models/stub_v1`).then((r) => (unloaded = r));
    await new Promise((r) => setTimeout(r, 300));
    expect(unloaded).toBeUndefined();
    expect((await getJson(`${front.url}/models/stub_v1`)).body).toMatchObject({ state: 'draining', requestsPending: 30 });
    const late = await post(`${front.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
    expect(late.status).toBe(404);

    const worker = await startGateway(redis.url);
    try {
      const answers = await Promise.all(accepted);
      expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
      await unloading;
      expect(unloaded).toMatchObject({ status: 200, body: { model_id: 'stub_v1', version: '1', drained_requests: 30 } });
      expect((await getJson(`${front.url}/models/stub_v1`)).status).toBe(404);
      expect((await del(`${front.url}/models/stub_v1`)).status).toBe(404);
      // Deleted fleet-wide: a replica that joins with the model in its MODELS_DIR runs what was queued, then drops it too.
      await waitFor(async () => (await post(`${worker.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status === 404, 5000);
    } finally {
      await worker.close();
    }
  });
});

describe('hot swap under load', () => {
  const own = ownGateway();

  it('drops no request across 20 reloads under 100 concurrent clients for 10 s, and serves both weights', async () => {
    const statuses = new Map<number, number>();
    const versions = new Set<string>();
    let stop = false;
    const client = async () => {
      while (!stop) {
        const res = await post(`${own.gw.url}/infer`, { model_id: 'stub_v1', payload: { input: EXAMPLE_INPUT } });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) versions.add(res.body.model_version);
      }
    };
    const clients = Array.from({ length: 100 }, client);
    const reloads: number[] = [];
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const weights = i % 2 === 0 ? './models/stub_v2.onnx' : './models/stub_v1/model.onnx';
      reloads.push((await post(`${own.gw.url}/models/stub_v1/reload`, { weights_path: weights })).status);
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(clients);
    expect(reloads).toEqual(Array(20).fill(200));
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(1000);
    // Versions 1, 3, 5, ... run the v1 weights and 2, 4, 6, ... the v2 weights.
    const seen = [...versions].map(Number);
    expect(seen.some((v) => v % 2 === 1)).toBe(true);
    expect(seen.some((v) => v % 2 === 0)).toBe(true);
  }, 60_000);
});
