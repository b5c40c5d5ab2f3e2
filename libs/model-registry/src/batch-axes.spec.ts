import { ErrorCode } from '@bales/errors';
import { batchKey, batchLayout, splitRows, stackRows } from './batch-axes';
import type { Signature, TensorSpec } from './protocol';

const f32 = (name: string, shape: (number | string)[]): TensorSpec => ({ name, type: 'float32', shape });

/** A voice-activity detector's signature: the states carry the batch on axis 1, the sample rate is a scalar. */
const vad: Signature = {
  inputs: [f32('input', ['batch', 'samples']), { name: 'sr', type: 'int64', shape: [] }, f32('h', [2, 'batch', 64]), f32('c', [2, 'batch', 64])],
  outputs: [f32('output', ['batch', 1]), f32('hn', [2, 'batch', 64]), f32('cn', [2, 'batch', 64])],
};

const badOverride = (signature: Signature, override: unknown, message: RegExp) =>
  expect(() => batchLayout(signature, override)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_MODEL, message: expect.stringMatching(message) }));

describe('batchLayout', () => {
  it('finds each batch axis by the name of the first input\'s batch dimension, wherever it sits', () => {
    const layout = batchLayout(vad);
    expect(layout).toEqual({
      inputs: [0, null, 1, 1],
      outputs: [0, 1, 1],
      axes: { input: 0, sr: null, h: 1, c: 1, output: 0, hn: 1, cn: 1 },
    });
  });

  it('batches on a dynamic first dimension when no dimension carries the name, named otherwise or unnamed', () => {
    const layout = batchLayout({ inputs: [f32('x', ['', 4]), f32('y', ['n', 4])], outputs: [f32('z', [-1, 4])] });
    expect(layout.axes).toEqual({ x: 0, y: 0, z: 0 });
    expect(layout.unbatched).toBeUndefined();
  });

  it('takes the name from the first input whose first dimension is named, so a scalar may come first', () => {
    const layout = batchLayout({ inputs: [{ name: 'sr', type: 'int64', shape: [] }, f32('h', [2, 'b', 8]), f32('x', ['b', 3])], outputs: [f32('hn', [2, 'b', 8])] });
    expect(layout.axes).toEqual({ sr: null, h: 1, x: 0, hn: 1 });
  });

  it('gives a fixed-size input no batch axis: its value joins the batch key', () => {
    expect(batchLayout({ inputs: [f32('x', ['batch', 4]), f32('bias', [4])], outputs: [f32('y', ['batch', 4])] }).inputs).toEqual([0, null]);
  });

  it.each([
    ['no input has a dynamic dimension', { inputs: [f32('x', [1, 8])], outputs: [f32('y', [1, 3])] }, /^no input has a dynamic dimension to batch along$/],
    ['an output has no batch axis', { inputs: [f32('x', ['batch', 4])], outputs: [f32('total', [4])] }, /^output 'total' \[4\] has no batch axis/],
    ['the batch name appears twice', { inputs: [f32('x', ['b', 4])], outputs: [f32('gram', ['b', 'b'])] }, /^output 'gram' \[b, b\] has the batch dimension 'b' at axes 0 and 1$/],
  ])('runs one request per run, saying why, when %s', (_case, signature, reason) => {
    const layout = batchLayout(signature as Signature);
    expect(layout.unbatched).toMatch(reason);
    expect(Object.values(layout.axes).every((a) => a === null)).toBe(true);
  });

  it('takes config.json batch_axes over the detection, tensor by tensor', () => {
    const unnamed: Signature = { inputs: [f32('x', ['', 5]), f32('h', [2, '', 3])], outputs: [f32('y', ['', 1]), f32('hn', [2, '', 3])] };
    expect(batchLayout(unnamed).unbatched).toMatch(/output 'hn'/);
    expect(batchLayout(unnamed, { h: 1, hn: 1 }).axes).toEqual({ x: 0, h: 1, y: 0, hn: 1 });
    expect(batchLayout(vad, { sr: null, h: 1, c: 1 }).axes).toEqual(batchLayout(vad).axes);
  });

  it.each([
    ['a name the model does not have', { state: 1 }, /'state' is neither an input nor an output of the model \(inputs: input, sr, h, c; outputs: output, hn, cn\)/],
    ['an axis past the rank', { h: 3 }, /h is 3, but input 'h' \[2, batch, 64\] has axes 0 to 2/],
    ['a negative axis', { h: -1 }, /h is -1, but input 'h' \[2, batch, 64\] has axes 0 to 2/],
    ['a fixed axis', { h: 0 }, /h is 0, but dimension 0 of input 'h' \[2, batch, 64\] is fixed at 2; a batch axis must be dynamic/],
    ['an axis on a scalar', { sr: 0 }, /sr is 0, but input 'sr' \[\] is a scalar, with no axis; use null/],
    ['an axis that is no integer', { h: '1' }, /h must be an axis \(an integer\) or null, got "1"/],
    ['a list instead of an object', [1, 1], /expected an object of input and output names to an axis or null, got \[1,1\]/],
    ['an override leaving an output without a batch axis', { hn: null }, /output 'hn' \[2, batch, 64\] has no batch axis.*; name its batch axis in batch_axes/],
  ])('refuses %s with INVALID_MODEL naming it', (_case, override, message) => {
    badOverride(vad, override, message);
  });
});

describe('stackRows and splitRows', () => {
  const floats = (b: Buffer | ArrayBuffer) => Array.from(b instanceof ArrayBuffer ? new Float32Array(b) : new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  const buf = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);
  /** Stacks into a buffer of exactly the rows' bytes, as the worker pool's reused memory is at least that. */
  const stack = (parts: Buffer[], itemDims: number[], axis: number) => {
    const data = Buffer.alloc(parts.reduce((n, p) => n + p.byteLength, 0));
    return { dims: stackRows(parts, itemDims, axis, 4, data), data };
  };

  // Two rows of a [2, batch, 3] state: row r's item [2, 3] holds r*100 + i*10 + j at [i, j].
  const item = (r: number) => [0, 1].flatMap((i) => [0, 1, 2].map((j) => r * 100 + i * 10 + j));

  it('interleaves rows along axis 1: out[i, r, j] = row_r[i, j]', () => {
    const { data, dims } = stack([buf(item(0)), buf(item(1))], [2, 3], 1);
    expect(dims).toEqual([2, 2, 3]);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let r = 0; r < 2; r++) for (let j = 0; j < 3; j++) expected.push(r * 100 + i * 10 + j);
    expect(floats(data)).toEqual(expected);
  });

  it('stacks along axis 0 as rows back to back, and along the last axis value by value', () => {
    expect(floats(stack([buf(item(0)), buf(item(1))], [2, 3], 0).data)).toEqual([...item(0), ...item(1)]);
    const last = stack([buf([1, 2]), buf([3, 4])], [2], 1);
    expect(last.dims).toEqual([2, 2]);
    expect(floats(last.data)).toEqual([1, 3, 2, 4]);
  });

  it('splits a tensor back into the rows it was stacked from, along axis 1 and axis 0', () => {
    const rows = [buf(item(0)), buf(item(1)), buf(item(2))];
    for (const axis of [0, 1]) {
      const { data, dims } = stack(rows, [2, 3], axis);
      expect(splitRows(data, dims, axis, 4).map(floats)).toEqual([item(0), item(1), item(2)]);
    }
  });

  it('splits along axis 0 into views of the same bytes, without a copy', () => {
    const bytes = buf([1, 2, 3, 4]);
    const [first] = splitRows(bytes, [2, 2], 0, 4);
    expect(first.buffer).toBe(bytes.buffer);
  });
});

describe('batchKey', () => {
  const model = { signature: { inputs: [f32('input', ['batch', 3]), { name: 'sr', type: 'int64', shape: [] }], outputs: [] }, batchAxes: { input: 0, sr: null }, maxBatchSize: 32 };
  const row = (sr: number, width = 3) => ({ buffers: [Buffer.from(new Float32Array(width).buffer), Buffer.from(BigInt64Array.from([BigInt(sr)]).buffer)], dims: [[width], []] });

  it('tells rows apart by the values of inputs with no batch axis, and by item shapes', () => {
    expect(batchKey(model, row(16000))).toBe(batchKey(model, row(16000)));
    expect(batchKey(model, row(16000))).not.toBe(batchKey(model, row(8000)));
    expect(batchKey(model, row(16000, 4))).not.toBe(batchKey(model, row(16000)));
  });

  it('leaves values out for a model that runs one request per run', () => {
    expect(batchKey({ ...model, maxBatchSize: 1 }, row(16000))).toBe(batchKey({ ...model, maxBatchSize: 1 }, row(8000)));
  });

  it('keys a big input by its digest rather than its bytes', () => {
    const fixed = { signature: { inputs: [f32('table', [1000])], outputs: [] }, batchAxes: { table: null }, maxBatchSize: 32 };
    const big = (v: number) => ({ buffers: [Buffer.from(Float32Array.from({ length: 1000 }, () => v).buffer)], dims: [[1000]] });
    expect(batchKey(fixed, big(1)).length).toBeLessThan(64);
    expect(batchKey(fixed, big(1))).not.toBe(batchKey(fixed, big(2)));
  });
});
