import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { HttpAnswer, TestGateway, getJson, ownGateway, post, startGateway, waitFor } from './support/gateway';
import { addModel, batchSum, runDirect, stateModel, stubModelsDir } from './support/models';

const SAMPLES = 16;

/** One request's inputs to the state model: its samples, sample rate and two [2, 64] states. */
interface StateRow {
  input: number[];
  sr: number;
  h: number[][];
  c: number[][];
}

/** Row i's own values: every input differs from row to row, so rows mixed up in a batch would show. */
function stateRow(i: number, sr = 16000): StateRow {
  const state = (offset: number) => [0, 1].map((layer) => Array.from({ length: 64 }, (_, j) => Math.cos(i * 0.7 + layer * 64 + j + offset) * 0.5));
  return { input: Array.from({ length: SAMPLES }, (_, k) => Math.sin(i * 1.7 + k * 0.3)), sr, h: state(0), c: state(1000) };
}

/** The rows as whole tensors, the states [2, N, 64] with the batch on axis 1. */
function stateFeeds(rows: StateRow[]): Record<string, Tensor> {
  const stacked = (pick: (r: StateRow) => number[][]) => Float32Array.from([0, 1].flatMap((layer) => rows.flatMap((r) => pick(r)[layer])));
  return {
    input: new Tensor('float32', Float32Array.from(rows.flatMap((r) => r.input)), [rows.length, SAMPLES]),
    sr: new Tensor('int64', BigInt64Array.from([BigInt(rows[0].sr)]), []),
    h: new Tensor('float32', stacked((r) => r.h), [2, rows.length, 64]),
    c: new Tensor('float32', stacked((r) => r.c), [2, rows.length, 64]),
  };
}

const maxDiff = (a: number[], b: number[]) => (a.length === b.length ? Math.max(...a.map((v, i) => Math.abs(v - b[i]))) : Infinity);

type RawResult = { outputs: Record<string, { shape: number[]; data: number[] }> };

/** Expects an /infer answer to hold what ONNX Runtime computes for the row alone, each output without its batch axis. */
async function expectDirectAnswer(path: string, row: StateRow, result: RawResult): Promise<void> {
  const direct = await runDirect(path, stateFeeds([row]));
  expect(result.outputs.output.shape).toEqual([1]);
  expect(result.outputs.hn.shape).toEqual([2, 64]);
  expect(result.outputs.cn.shape).toEqual([2, 64]);
  for (const name of ['output', 'hn', 'cn']) expect(maxDiff(result.outputs[name].data, direct[name].data)).toBeLessThan(1e-5);
}

describe("batching along each model's own batch axes (real HTTP, Redis, BullMQ and ONNX Runtime)", () => {
  const dir = stubModelsDir();
  addModel(dir, 'vad', stateModel(), { task: 'raw' });
  addModel(dir, 'vad_renamed', stateModel('n'), { task: 'raw', batch_axes: { h: 1, c: 1, hn: 1, cn: 1 } });
  addModel(dir, 'batch_sum', batchSum, { task: 'raw' });
  const vadPath = join(dir, 'vad/model.onnx');
  const own = ownGateway({ MODELS_DIR: dir });
  let queues = 0;

  /**
   * Sends every request to a replica that does not process, then lets a replica with one worker thread take them
   * all at once, so they meet in shared batches however fast this client is.
   */
  async function inSharedBatches(bodies: object[], env: Record<string, string> = {}): Promise<HttpAnswer[]> {
    const shared = { MODELS_DIR: dir, QUEUE_PREFIX: `axes${++queues}`, THREAD_POOL_SIZE: '1', ...env };
    const front = await startGateway(own.redis.url, { ...shared, PROCESSOR_ENABLED: 'false' });
    let worker: TestGateway | undefined;
    try {
      const sent = bodies.map((body) => post(`${front.url}/infer`, body));
      await waitFor(async () => (await getJson(`${front.url}/health`)).body.pending_requests === bodies.length);
      worker = await startGateway(own.redis.url, shared);
      return await Promise.all(sent);
    } finally {
      await Promise.all([front.close(), worker?.close()]);
    }
  }

  it('stacks concurrent rows on the states\' axis 1 and answers each as ONNX Runtime does for it alone', async () => {
    const rows = Array.from({ length: 48 }, (_, i) => stateRow(i));
    const answers = await inSharedBatches(rows.map((payload) => ({ model_id: 'vad', payload })));
    expect(answers.map((a) => a.status)).toEqual(rows.map(() => 200));
    expect(Math.max(...answers.map((a) => a.body.batch_size))).toBeGreaterThan(1);
    for (let i = 0; i < rows.length; i++) await expectDirectAnswer(vadPath, rows[i], answers[i].body.result);
  });

  it('batches rows only with rows of the same sample rate, and answers each with its own', async () => {
    const rows = Array.from({ length: 48 }, (_, i) => stateRow(i, i % 2 ? 8000 : 16000));
    const answers = await inSharedBatches(
      rows.map((payload) => ({ model_id: 'vad', payload })),
      { MAX_BATCH_SIZE: '64' },
    );
    expect(answers.map((a) => a.status)).toEqual(rows.map(() => 200));
    const sizes = answers.map((a) => a.body.batch_size);
    // 24 rows of each rate: a batch mixing them could hold more.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(24);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    for (let i = 0; i < rows.length; i++) await expectDirectAnswer(vadPath, rows[i], answers[i].body.result);
  });

  it('takes V2 tensors with the batch at each input\'s own axis, as JSON and as binary data, and answers as ONNX Runtime does', async () => {
    const rows = [stateRow(1), stateRow(2), stateRow(3)];
    const feeds = stateFeeds(rows);
    const direct = await runDirect(vadPath, feeds);
    const tensor = (name: string, datatype: string) => ({ name, shape: [...feeds[name].dims], datatype, data: Array.from(feeds[name].data as ArrayLike<number | bigint>, Number) });
    const json = await post(`${own.gw.url}/v2/models/vad/infer`, { inputs: [tensor('input', 'FP32'), tensor('sr', 'INT64'), tensor('h', 'FP32'), tensor('c', 'FP32')] });
    expect(json.status).toBe(200);
    expect(json.body.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape])).toEqual([
      ['output', [3, 1]],
      ['hn', [2, 3, 64]],
      ['cn', [2, 3, 64]],
    ]);
    for (const out of json.body.outputs) expect(maxDiff(out.data, direct[out.name].data)).toBeLessThan(1e-5);

    // h as binary tensor data, hn asked back as binary: the same numbers.
    const hBytes = Buffer.from((feeds.h.data as Float32Array).buffer);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [tensor('input', 'FP32'), tensor('sr', 'INT64'), { name: 'h', shape: [2, 3, 64], datatype: 'FP32', parameters: { binary_data_size: hBytes.length } }, tensor('c', 'FP32')],
        outputs: [{ name: 'hn', parameters: { binary_data: true } }],
      }),
    );
    const res = await fetch(`${own.gw.url}/v2/models/vad/infer`, { method: 'POST', headers: { 'inference-header-content-length': String(header.length) }, body: Buffer.concat([header, hBytes]) });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const answer = JSON.parse(body.subarray(0, headerLength).toString());
    expect(answer.outputs).toEqual([{ name: 'hn', shape: [2, 3, 64], datatype: 'FP32', parameters: { binary_data_size: 2 * 3 * 64 * 4 } }]);
    const hn = body.subarray(headerLength);
    expect(maxDiff(Array.from(new Float32Array(hn.buffer.slice(hn.byteOffset, hn.byteOffset + hn.byteLength))), direct.hn.data)).toBeLessThan(1e-5);
  });

  it('shows the batch axes in GET /models/:id and in V2 model metadata', async () => {
    const model = await getJson(`${own.gw.url}/models/vad`);
    expect(model.body).toMatchObject({ maxBatchSize: 32, batchAxes: { input: 0, sr: null, h: 1, c: 1, output: 0, hn: 1, cn: 1 } });
    expect(model.body.unbatchedReason).toBeUndefined();
    expect((await getJson(`${own.gw.url}/v2/models/vad`)).body).toEqual({
      name: 'vad',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'input', datatype: 'FP32', shape: [-1, -1], parameters: { batch_axis: 0 } },
        { name: 'sr', datatype: 'INT64', shape: [] },
        { name: 'h', datatype: 'FP32', shape: [2, -1, 64], parameters: { batch_axis: 1 } },
        { name: 'c', datatype: 'FP32', shape: [2, -1, 64], parameters: { batch_axis: 1 } },
      ],
      outputs: [
        { name: 'output', datatype: 'FP32', shape: [-1, 1], parameters: { batch_axis: 0 } },
        { name: 'hn', datatype: 'FP32', shape: [2, -1, 64], parameters: { batch_axis: 1 } },
        { name: 'cn', datatype: 'FP32', shape: [2, -1, 64], parameters: { batch_axis: 1 } },
      ],
      parameters: { max_batch_size: 32 },
    });
  });

  it('takes the batch axes config.json names when the dimension names do not tell them', async () => {
    expect((await getJson(`${own.gw.url}/models/vad_renamed`)).body).toMatchObject({ maxBatchSize: 32, batchAxes: { input: 0, sr: null, h: 1, c: 1, hn: 1, cn: 1 } });
    const rows = [stateRow(4), stateRow(5)];
    const answers = await Promise.all(rows.map((payload) => post(`${own.gw.url}/infer`, { model_id: 'vad_renamed', payload })));
    for (let i = 0; i < rows.length; i++) await expectDirectAnswer(vadPath, rows[i], answers[i].body.result);
  });

  it('runs a model whose batch axes cannot be determined one request per run, and says why', async () => {
    const reason = /^output 'total' \[4\] has no batch axis/;
    expect((await getJson(`${own.gw.url}/models/batch_sum`)).body).toMatchObject({ maxBatchSize: 1, batchAxes: { x: null, total: null }, unbatchedReason: expect.stringMatching(reason) });
    expect((await getJson(`${own.gw.url}/v2/models/batch_sum`)).body.parameters).toEqual({ max_batch_size: 1, unbatched_reason: expect.stringMatching(reason) });
    // Each request is a whole tensor: the sum over its own batch, never over other requests' rows.
    const xs = Array.from({ length: 12 }, (_, i) => [[i, i + 1, i + 2, i + 3], [1, 1, 1, 1]]);
    const answers = await inSharedBatches(xs.map((x) => ({ model_id: 'batch_sum', payload: { input: x } })));
    expect(answers.map((a) => a.body.batch_size)).toEqual(xs.map(() => 1));
    answers.forEach((a, i) => expect(a.body.result.outputs.total).toEqual({ shape: [4], data: xs[i][0].map((v) => v + 1) }));
  });

  it('refuses a batch_axes that does not fit the model, naming the problem, and serves the other models', async () => {
    const badDir = stubModelsDir();
    addModel(badDir, 'vad_bad', stateModel(), { task: 'raw', batch_axes: { h: 3, c: 1 } });
    const gw = await startGateway(own.redis.url, { MODELS_DIR: badDir, QUEUE_PREFIX: 'axes-bad' });
    try {
      expect((await getJson(`${gw.url}/models/vad_bad`)).body).toMatchObject({
        state: 'failed',
        reason: "batch_axes in config.json: h is 3, but input 'h' [2, batch, 64] has axes 0 to 2",
      });
      expect((await post(`${gw.url}/infer`, { payload: { input: Array(128).fill(0.5) } })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('names the input, the item shape and where the batch sits when a request does not fit', async () => {
    const row = stateRow(0);
    const infer = await post(`${own.gw.url}/infer`, { model_id: 'vad', payload: { ...row, h: row.h[0] } });
    expect(infer.status).toBe(422);
    expect(infer.body.message).toBe('payload.h: expected float32[2, 64] (128 values), got 64 values (one row of h [2, batch, 64], whose batch is axis 1)');
    const scalar = await post(`${own.gw.url}/infer`, { model_id: 'vad', payload: { ...row, sr: 'fast' } });
    expect(scalar.body.message).toBe('payload.sr: expected an int64 scalar, got "fast"');
    const v2 = await post(`${own.gw.url}/v2/models/vad/infer`, {
      inputs: [
        { name: 'input', shape: [1, SAMPLES], datatype: 'FP32', data: row.input },
        { name: 'sr', shape: [], datatype: 'INT64', data: [16000] },
        { name: 'h', shape: [1, 2, 64], datatype: 'FP32', data: row.h.flat() },
        { name: 'c', shape: [2, 1, 64], datatype: 'FP32', data: row.c.flat() },
      ],
    });
    expect(v2.status).toBe(400);
    expect(v2.body.error).toBe("input 'h': shape [1, 2, 64] does not fit input h of shape [2, -1, 64] (-1: any size; the batch is axis 1)");
  });
});
