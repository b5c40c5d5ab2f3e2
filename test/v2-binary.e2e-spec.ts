import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { ownGateway, post } from './support/gateway';
import { runDirect, testRepository } from './support/models';
import { EXAMPLE_INPUT } from './support/example-input';

const MAX_BODY_BYTES = 65536;

interface BinaryAnswer {
  status: number;
  headers: Headers;
  /** The JSON part: the whole body for a JSON answer, the header for one with binary tensor data. */
  json: any;
  /** Each binary output's bytes, cut by its binary_data_size, in output order. */
  tensors: Buffer[];
}

/** POSTs a body with binary tensor data as tritonclient frames it: the JSON header, then the tensors' bytes. */
async function postBinary(url: string, header: unknown, tensors: Buffer[], headers: Record<string, string> = {}): Promise<BinaryAnswer> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  return send(url, Buffer.concat([json, ...tensors]), { 'inference-header-content-length': String(json.length), ...headers });
}

/** POSTs raw bytes (fetch names no content-type for them) and splits the answer as a client of the extension does. */
async function send(url: string, body: Buffer, headers: Record<string, string>): Promise<BinaryAnswer> {
  const res = await fetch(url, { method: 'POST', headers, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const length = res.headers.get('inference-header-content-length');
  const jsonLength = length === null ? bytes.length : Number(length);
  const json = JSON.parse(bytes.subarray(0, jsonLength).toString());
  const tensors: Buffer[] = [];
  let offset = jsonLength;
  for (const output of json.outputs ?? []) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    tensors.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== bytes.length) throw new Error(`the answer's binary_data_size add up to ${offset - jsonLength}, the body holds ${bytes.length - jsonLength}`);
  return { status: res.status, headers: res.headers, json, tensors };
}

const f32 = (values: number[]) => Buffer.from(new Float32Array(values).buffer);
const i64 = (values: number[]) => Buffer.from(new BigInt64Array(values.map(BigInt)).buffer);
const floats = (bytes: Buffer) => Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));

/** A binary input's entry in the JSON header: no data, its size in bytes. */
const binaryInput = (name: string, shape: number[], datatype: string, bytes: Buffer) => ({ name, shape, datatype, parameters: { binary_data_size: bytes.length } });
const stubInput = (rows: number, bytes: Buffer) => binaryInput('input', [rows, 128], 'FP32', bytes);

describe('Open Inference Protocol binary tensor data', () => {
  const dir = testRepository();
  const own = ownGateway({ MODELS_DIR: dir, MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
  const infer = (model = 'stub_v1') => `${own.gw.url}/v2/models/${model}/infer`;

  describe('inputs', () => {
    it('gives a binary FP32 input the outputs of its JSON form and of ONNX Runtime directly, whatever the content type', async () => {
      const json = await post(infer(), { inputs: [{ name: 'input', shape: [1, 128], datatype: 'FP32', data: EXAMPLE_INPUT }] });
      expect(json.status).toBe(200);
      const direct = await runDirect(join(dir, 'stub_v1/model.onnx'), { input: new Tensor('float32', Float32Array.from(EXAMPLE_INPUT), [1, 128]) });
      const bytes = f32(EXAMPLE_INPUT);
      for (const contentType of [{}, { 'content-type': 'application/octet-stream' }, { 'content-type': 'application/json' }, { 'content-type': 'text/plain' }] as Record<string, string>[]) {
        const res = await postBinary(infer(), { id: 'bin-1', inputs: [stubInput(1, bytes)] }, [bytes], contentType);
        expect(res.status).toBe(200);
        // Outputs not asked for as binary data come back as JSON, as ever.
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect(res.headers.get('inference-header-content-length')).toBeNull();
        expect(res.json).toEqual({ ...json.body, id: 'bin-1' });
        res.json.outputs[0].data.forEach((p: number, i: number) => expect(p).toBeCloseTo(direct.probabilities.data[i], 6));
      }
    });

    it('answers two rows in one binary tensor as the JSON form does', async () => {
      const rows = [EXAMPLE_INPUT, EXAMPLE_INPUT.map((v) => -v)];
      const bytes = f32(rows.flat());
      const res = await postBinary(infer(), { inputs: [stubInput(2, bytes)] }, [bytes]);
      const json = await post(infer(), { inputs: [{ name: 'input', shape: [2, 128], datatype: 'FP32', data: rows }] });
      expect(res.status).toBe(200);
      expect(res.json.outputs).toEqual(json.body.outputs);
      expect(res.json.outputs[0].shape).toEqual([2, 10]);
      expect(res.json.outputs[0].data.slice(0, 10)).not.toEqual(res.json.outputs[0].data.slice(10));
    });

    it('takes JSON and binary inputs in one request, either way round, as ONNX Runtime computes them', async () => {
      const ids = [1, 2, 3, 4, 50, 60, 70, 80];
      const x = [0.5, 0.25, -1, 2, 0, 0, 0.75, -0.5];
      const direct = await runDirect(join(dir, 'multi_input/model.onnx'), {
        ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [2, 4]),
        x: new Tensor('float32', Float32Array.from(x), [2, 4]),
      });
      const expected = [{ name: 'sum', shape: [2, 4], datatype: 'FP32', data: direct.sum.data }];
      const binaryX = await postBinary(infer('multi_input'), { inputs: [{ name: 'ids', shape: [2, 4], datatype: 'INT64', data: ids }, binaryInput('x', [2, 4], 'FP32', f32(x))] }, [f32(x)]);
      expect(binaryX.status).toBe(200);
      expect(binaryX.json.outputs).toEqual(expected);
      const binaryIds = await postBinary(infer('multi_input'), { inputs: [binaryInput('ids', [2, 4], 'INT64', i64(ids)), { name: 'x', shape: [2, 4], datatype: 'FP32', data: x }] }, [i64(ids)]);
      expect(binaryIds.json.outputs).toEqual(expected);
      // Both binary, the bytes in input order: the header lists x first here, so x's bytes come first.
      const both = await postBinary(infer('multi_input'), { inputs: [binaryInput('x', [2, 4], 'FP32', f32(x)), binaryInput('ids', [2, 4], 'INT64', i64(ids))] }, [f32(x), i64(ids)]);
      expect(both.json.outputs).toEqual(expected);
    });

    it('serves the versioned route too', async () => {
      const bytes = f32(EXAMPLE_INPUT);
      const res = await postBinary(`${own.gw.url}/v2/models/stub_v1/versions/1/infer`, { inputs: [stubInput(1, bytes)] }, [bytes]);
      expect(res).toMatchObject({ status: 200, json: { model_name: 'stub_v1', model_version: '1' } });
    });
  });

  describe('outputs', () => {
    it('answers every output as binary data with binary_data_output, equal to the JSON outputs', async () => {
      const bytes = f32(EXAMPLE_INPUT);
      const json = await post(infer(), { inputs: [{ name: 'input', shape: [1, 128], datatype: 'FP32', data: EXAMPLE_INPUT }] });
      const res = await postBinary(infer(), { parameters: { binary_data_output: true }, inputs: [stubInput(1, bytes)] }, [bytes]);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      expect(res.json.outputs).toEqual([{ name: 'probabilities', shape: [1, 10], datatype: 'FP32', parameters: { binary_data_size: 40 } }]);
      expect(floats(res.tensors[0])).toEqual(json.body.outputs[0].data);
    });

    it('answers the outputs that ask for it as binary data, and the others as JSON, from a JSON request too', async () => {
      const x = [1, -2, -3, 4, 0.5, -0.5, 6, -7];
      const outputs = (relu: object, neg: object) => [
        { name: 'relu', ...relu },
        { name: 'neg', ...neg },
      ];
      const json = await post(infer('two_outputs'), { inputs: [{ name: 'x', shape: [2, 2, 2], datatype: 'FP32', data: x }] });
      const [relu, neg] = json.body.outputs;
      const perOutput = await postBinary(infer('two_outputs'), { inputs: [{ name: 'x', shape: [2, 2, 2], datatype: 'FP32', data: x }], outputs: outputs({ parameters: { binary_data: true } }, {}) }, []);
      expect(perOutput.status).toBe(200);
      expect(perOutput.json.outputs).toEqual([{ name: 'relu', shape: [2, 2, 2], datatype: 'FP32', parameters: { binary_data_size: 32 } }, neg]);
      expect(floats(perOutput.tensors[0])).toEqual(relu.data);
      // A plain JSON request, and a per-output false over the request's true.
      const res = await fetch(infer('two_outputs'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ parameters: { binary_data_output: true }, inputs: [{ name: 'x', shape: [2, 2, 2], datatype: 'FP32', data: x }], outputs: outputs({ parameters: { binary_data: false } }, {}) }),
      });
      const body = Buffer.from(await res.arrayBuffer());
      const headerLength = Number(res.headers.get('inference-header-content-length'));
      expect(JSON.parse(body.subarray(0, headerLength).toString()).outputs).toEqual([relu, { name: 'neg', shape: [2, 2, 2], datatype: 'FP32', parameters: { binary_data_size: 32 } }]);
      expect(floats(body.subarray(headerLength))).toEqual(neg.data);
    });
  });

  describe('bad framing answers 400 naming the problem', () => {
    const bytes = f32(EXAMPLE_INPUT);
    const header = JSON.stringify({ inputs: [stubInput(1, bytes)] });
    const body = Buffer.concat([Buffer.from(header), bytes]);

    it.each([
      ['a header length that is not a number', 'abc', /Inference-Header-Content-Length must be a non-negative integer, the JSON header's length in bytes; got "abc"/],
      ['a negative header length', '-5', /Inference-Header-Content-Length must be a non-negative integer/],
      ['a header past the end of the body', String(body.length + 1), new RegExp(`Inference-Header-Content-Length is ${body.length + 1}, past the end of the ${body.length}-byte body`)],
      ['a header length of 0', '0', /binary data without a JSON header is not supported/],
      ['a header cut short', String(header.length - 2), /the JSON header is not valid JSON/],
    ])('%s', async (_case, length, error) => {
      const res = await send(infer(), body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': length });
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ error: expect.stringMatching(error) });
    });

    it.each([
      ['sizes that add up to less than the body', { inputs: [stubInput(1, bytes)] }, [bytes, Buffer.alloc(4)], /parameters.binary_data_size add up to 512 bytes, but 516 bytes follow the JSON header/],
      ['sizes that add up to more than the body', { inputs: [stubInput(1, bytes)] }, [bytes.subarray(0, 500)], /add up to 512 bytes, but 500 bytes follow the JSON header/],
      ['bytes after the header when no input is binary', { inputs: [{ name: 'input', shape: [1, 128], datatype: 'FP32', data: EXAMPLE_INPUT }] }, [bytes], /add up to 0 bytes, but 512 bytes follow/],
      ['a size that does not fit the shape and datatype', { inputs: [binaryInput('input', [1, 128], 'FP32', bytes.subarray(0, 256))] }, [bytes.subarray(0, 256)], /input 'input': shape \[1, 128\] needs 512 bytes of float32, binary data has 256/],
      ['a size that does not fit the int64 shape', { inputs: [binaryInput('ids', [1, 4], 'INT64', f32([1, 2, 3, 4])), { name: 'x', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }] }, [f32([1, 2, 3, 4])], /input 'ids': shape \[1, 4\] needs 32 bytes of int64, binary data has 16/, 'multi_input'],
      ['binary_data_size on an input that also has data', { inputs: [{ ...stubInput(1, bytes), data: EXAMPLE_INPUT }] }, [bytes], /input 'input' has both data and parameters.binary_data_size/],
      ['a binary_data_size that is not an integer', { inputs: [{ ...stubInput(1, bytes), parameters: { binary_data_size: '512' } }] }, [bytes], /parameters.binary_data_size must be a non-negative integer, got "512"/],
      ['the BYTES datatype', { inputs: [binaryInput('input', [1, 4], 'BYTES', Buffer.alloc(8))] }, [Buffer.alloc(8)], /datatype must be one of BOOL, UINT8, INT8, INT32, INT64, FP32, FP64; got "BYTES"/],
      ['a header the V2 request DTO refuses', { inputs: [{ name: 'input', datatype: 'FP32', parameters: { binary_data_size: 512 } }] }, [bytes], /inputs\[\]\.shape must be an array of integers/],
      ['a datatype other than the model input’s', { inputs: [binaryInput('input', [1, 128], 'INT32', bytes)] }, [bytes], /input 'input' is FP32 in model 'stub_v1', got datatype INT32/],
      ['a binary_data that is not a boolean', { inputs: [stubInput(1, bytes)], outputs: [{ name: 'probabilities', parameters: { binary_data: 1 } }] }, [bytes], /output 'probabilities': parameters.binary_data must be a boolean, got 1/],
    ])('%s', async (_case, json, tensors, error, model = 'stub_v1') => {
      const res = await postBinary(infer(model), json, tensors);
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ error: expect.stringMatching(error) });
    });

    it('binary_data_size in a JSON body without the header', async () => {
      const res = await post(infer(), { inputs: [stubInput(1, bytes)] });
      expect(res).toMatchObject({ status: 400, body: { error: expect.stringMatching(/input 'input' has parameters.binary_data_size, but the body holds no binary data/) } });
    });
  });

  it('answers a binary body over MAX_BODY_BYTES with 413 naming the limit', async () => {
    const rows = Math.ceil(MAX_BODY_BYTES / 512);
    const bytes = Buffer.alloc(rows * 512);
    const res = await postBinary(infer(), { inputs: [stubInput(rows, bytes)] }, [bytes]);
    expect(res.status).toBe(413);
    expect(res.json).toEqual({ error: expect.stringMatching(new RegExp(`over MAX_BODY_BYTES=${MAX_BODY_BYTES}`)) });
  });

  it('reads a V2 body with neither the header nor a content type as JSON, as tritonclient sends an all-JSON request', async () => {
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 128], datatype: 'FP32', data: EXAMPLE_INPUT }] }));
    const res = await send(infer(), body, {});
    expect(res).toMatchObject({ status: 200, json: { outputs: [{ name: 'probabilities', shape: [1, 10] }] } });
    expect((await send(`${own.gw.url}/infer`, Buffer.from(JSON.stringify({ payload: { input: EXAMPLE_INPUT } })), {})).status).toBe(415);
  });

  describe('leaves the other bodies as they were', () => {
    it('refuses a V2 body that is not JSON and has no Inference-Header-Content-Length with 415', async () => {
      const res = await send(infer(), f32(EXAMPLE_INPUT), { 'content-type': 'application/octet-stream' });
      expect(res).toMatchObject({ status: 415, json: { error: expect.stringMatching(/must be application\/json, .*, or binary tensor data with an Inference-Header-Content-Length header$/) } });
    });

    it('refuses binary framing on POST /infer with 415, and still serves its JSON', async () => {
      const bytes = f32(EXAMPLE_INPUT);
      const res = await postBinary(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } }, [bytes], { 'content-type': 'application/octet-stream' });
      expect(res.status).toBe(415);
      const json = await post(`${own.gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } });
      expect(json).toMatchObject({ status: 200, body: { result: { label: expect.any(Number) } } });
    });
  });

  it('is documented in Swagger: both media types and the header on the infer operations', async () => {
    const doc = (await (await fetch(`${own.gw.url}/docs-json`)).json()) as any;
    for (const path of ['/v2/models/{name}/infer', '/v2/models/{name}/versions/{version}/infer']) {
      const op = doc.paths[path].post;
      expect(Object.keys(op.requestBody.content)).toEqual(['application/json', 'application/octet-stream']);
      expect(op.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'Inference-Header-Content-Length', in: 'header' })]));
      expect(op.description).toMatch(/binary_data_size/);
      expect(op.responses['200'].headers).toHaveProperty('Inference-Header-Content-Length');
    }
  });
});
