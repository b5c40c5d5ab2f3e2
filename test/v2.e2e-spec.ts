import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { getJson, ownGateway, post } from './support/gateway';
import { runDirect, testRepository } from './support/models';
import { EXAMPLE_INPUT } from './support/example-input';

const fp32 = (name: string, shape: number[], data: unknown) => ({ name, shape, datatype: 'FP32', data });

describe('Open Inference Protocol (KServe V2) over the same queue and batcher', () => {
  const dir = testRepository();
  const own = ownGateway({ MODELS_DIR: dir });

  it('serves server metadata, liveness and readiness', async () => {
    expect((await getJson(`${own.gw.url}/v2`)).body).toEqual({ name: 'bales', version: expect.any(String), extensions: ['binary_tensor_data'] });
    expect(await getJson(`${own.gw.url}/v2/health/live`)).toMatchObject({ status: 200, body: { live: true } });
    expect(await getJson(`${own.gw.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    expect(await getJson(`${own.gw.url}/v2/models/stub_v1/ready`)).toMatchObject({ status: 200, body: { name: 'stub_v1', ready: true } });
    expect(await getJson(`${own.gw.url}/v2/models/stub_v1/versions/1/ready`)).toMatchObject({ status: 200 });
  });

  it('reports the signature read from the ONNX file, with -1 for dynamic dimensions, and the batch axes', async () => {
    expect((await getJson(`${own.gw.url}/v2/models/multi_input`)).body).toEqual({
      name: 'multi_input',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'ids', datatype: 'INT64', shape: [-1, 4], parameters: { batch_axis: 0 } },
        { name: 'x', datatype: 'FP32', shape: [-1, 4], parameters: { batch_axis: 0 } },
      ],
      outputs: [{ name: 'sum', datatype: 'FP32', shape: [-1, 4], parameters: { batch_axis: 0 } }],
      parameters: { max_batch_size: 32 },
    });
    const fixed = (await getJson(`${own.gw.url}/v2/models/fixed_one/versions/1`)).body;
    expect(fixed.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [1, 8] }]);
    expect(fixed.parameters).toEqual({ max_batch_size: 1, unbatched_reason: 'no input has a dynamic dimension to batch along' });
    expect((await getJson(`${own.gw.url}/v2/models/dynamic_seq`)).body.inputs).toEqual([{ name: 'tokens', datatype: 'FP32', shape: [-1, -1], parameters: { batch_axis: 0 } }]);
  });

  it('gives the stub the same probabilities as /infer and as ONNX Runtime directly', async () => {
    const v2 = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { id: 'req-1', inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)] });
    expect(v2.status).toBe(200);
    expect(v2.body).toMatchObject({ model_name: 'stub_v1', model_version: '1', id: 'req-1' });
    const [out] = v2.body.outputs;
    expect(out).toMatchObject({ name: 'probabilities', shape: [1, 10], datatype: 'FP32' });
    const direct = await runDirect(join(dir, 'stub_v1/model.onnx'), { input: new Tensor('float32', Float32Array.from(EXAMPLE_INPUT), [1, 128]) });
    out.data.forEach((p: number, i: number) => expect(p).toBeCloseTo(direct.probabilities.data[i], 6));
    const infer = await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
    const label = out.data.indexOf(Math.max(...out.data));
    expect(infer.body.result).toEqual({ label, confidence: expect.closeTo(out.data[label], 6) });
  });

  it('answers a request carrying several rows as one response, each row as if sent alone', async () => {
    const rows = [EXAMPLE_INPUT, EXAMPLE_INPUT.map((v) => v * 2), EXAMPLE_INPUT.map((v) => -v)];
    const res = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { inputs: [fp32('input', [3, 128], rows)] });
    expect(res.status).toBe(200);
    expect(res.body.outputs[0].shape).toEqual([3, 10]);
    expect(res.body.outputs[0].data).toHaveLength(30);
    for (let r = 0; r < 3; r++) {
      const single = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { inputs: [fp32('input', [1, 128], rows[r].flat())] });
      single.body.outputs[0].data.forEach((p: number, i: number) => expect(res.body.outputs[0].data[r * 10 + i]).toBeCloseTo(p, 6));
    }
  });

  it('matches ONNX Runtime for a multi-input model with int64 and float32 inputs', async () => {
    const ids = [1, 2, 3, 4, 50, 60, 70, 80];
    const x = [0.5, 0.25, -1, 2, 0, 0, 0.75, -0.5];
    const res = await post(`${own.gw.url}/v2/models/multi_input/infer`, {
      inputs: [
        { name: 'ids', shape: [2, 4], datatype: 'INT64', data: ids },
        { name: 'x', shape: [2, 4], datatype: 'FP32', data: x },
      ],
    });
    expect(res.status).toBe(200);
    const direct = await runDirect(join(dir, 'multi_input/model.onnx'), {
      ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [2, 4]),
      x: new Tensor('float32', Float32Array.from(x), [2, 4]),
    });
    expect(res.body.outputs).toEqual([{ name: 'sum', shape: [2, 4], datatype: 'FP32', data: direct.sum.data }]);
  });

  it('serves a dynamic inner dimension at two different shapes, from flat and nested data', async () => {
    const [short, long] = await Promise.all([
      post(`${own.gw.url}/v2/models/dynamic_seq/infer`, { inputs: [fp32('tokens', [2, 3], [[1, 2, 3], [4, 5, 6]])] }),
      post(`${own.gw.url}/v2/models/dynamic_seq/infer`, { inputs: [fp32('tokens', [1, 5], [1, 2, 3, 4, 10])] }),
    ]);
    expect(short.body.outputs[0]).toMatchObject({ shape: [2, 1], data: [2, 5] });
    expect(long.body.outputs[0]).toMatchObject({ shape: [1, 1], data: [4] });
  });

  it('honours the requested outputs', async () => {
    const res = await post(`${own.gw.url}/v2/models/two_outputs/infer`, { inputs: [fp32('x', [1, 2, 2], [1, -2, -3, 4])], outputs: [{ name: 'neg' }] });
    expect(res.status).toBe(200);
    expect(res.body.outputs).toEqual([{ name: 'neg', shape: [1, 2, 2], datatype: 'FP32', data: [-1, 2, 3, -4] }]);
  });

  it('takes priority and timeout from parameters, with the same bounds as /infer', async () => {
    const ok = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { parameters: { priority: 1, timeout_ms: 2000 }, inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)] });
    expect(ok.status).toBe(200);
    const bad = await post(`${own.gw.url}/v2/models/stub_v1/infer`, { parameters: { priority: 9 }, inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)] });
    expect(bad).toMatchObject({ status: 400, body: { error: 'parameters.priority must be an integer from 1 to 3' } });
  });

  it('is documented in Swagger', async () => {
    const paths = Object.keys((await getJson(`${own.gw.url}/docs-json`)).body.paths);
    expect(paths).toEqual(
      expect.arrayContaining(['/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/{name}', '/v2/models/{name}/versions/{version}', '/v2/models/{name}/ready', '/v2/models/{name}/infer', '/v2/models/{name}/versions/{version}/infer']),
    );
  });

  describe('errors answer {"error": "..."}', () => {
    it.each([
      ['a shape and data length that differ', 400, 'stub_v1', { inputs: [fp32('input', [1, 128], [1, 2, 3])] }, /needs 128 values, data has 3/],
      ['a shape that does not fit the input', 400, 'stub_v1', { inputs: [fp32('input', [1, 64], Array(64).fill(0))] }, /does not fit input input of shape \[-1, 128\]/],
      ['the wrong datatype', 400, 'stub_v1', { inputs: [{ name: 'input', shape: [1, 128], datatype: 'INT32', data: Array(128).fill(0) }] }, /input 'input' is FP32 in model 'stub_v1', got datatype INT32/],
      ['an unsupported datatype', 400, 'stub_v1', { inputs: [{ name: 'input', shape: [1, 128], datatype: 'BYTES', data: [] }] }, /datatype must be one of/],
      ['an unknown input name', 400, 'stub_v1', { inputs: [fp32('pixels', [1, 128], EXAMPLE_INPUT)] }, /unknown input 'pixels'/],
      ['a missing input', 400, 'multi_input', { inputs: [fp32('x', [1, 4], [0, 0, 0, 0])] }, /missing input 'ids'/],
      ['an unknown output', 400, 'stub_v1', { inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)], outputs: [{ name: 'logits' }] }, /unknown output 'logits'/],
      ['a non-number in the data', 400, 'stub_v1', { inputs: [fp32('input', [1, 128], [...EXAMPLE_INPUT.slice(1), 'x'])] }, /expected a finite number/],
      ['a batch above 1 for a model fixed at 1', 400, 'fixed_one', { inputs: [fp32('input', [2, 8], Array(16).fill(0))] }, /shape \[2, 8\] does not fit input input of shape \[1, 8\] \(the model has no batch axis: one tensor a request\)/],
      ['no inputs', 400, 'stub_v1', { inputs: [] }, /inputs must hold at least one tensor/],
      ['an unknown model', 404, 'nope', { inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)] }, /model 'nope' is not registered/],
    ])('%s -> %i', async (_case, status, model, body, error) => {
      const res = await post(`${own.gw.url}/v2/models/${model}/infer`, body);
      expect(res.status).toBe(status);
      expect(Object.keys(res.body)).toEqual(['error']);
      expect(res.body.error).toMatch(error);
    });

    it('404 for a version that is not served, in metadata, readiness and inference', async () => {
      expect((await getJson(`${own.gw.url}/v2/models/stub_v1/versions/7`)).status).toBe(404);
      expect((await getJson(`${own.gw.url}/v2/models/stub_v1/versions/7/ready`)).status).toBe(404);
      const res = await post(`${own.gw.url}/v2/models/stub_v1/versions/7/infer`, { inputs: [fp32('input', [1, 128], EXAMPLE_INPUT)] });
      expect(res).toMatchObject({ status: 404, body: { error: expect.stringMatching(/no version '7'/) } });
    });

    it('400 for invalid JSON, in the protocol body', async () => {
      const res = await post(`${own.gw.url}/v2/models/stub_v1/infer`, '{"inputs": [');
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: expect.any(String) });
    });
  });
});
