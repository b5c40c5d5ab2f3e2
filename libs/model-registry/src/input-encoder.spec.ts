import { ErrorCode } from '@bales/errors';
import { checkRow, encodePayload, encodeTensors } from './input-encoder';
import { seededRandom } from '../../../scripts/onnx/onnx-writer';
import { LiftedArray, liftNumberArrays } from './lifted-arrays';
import type { TensorSpec } from './protocol';

const stub: TensorSpec[] = [{ name: 'input', type: 'float32', shape: ['batch', 128] }];
const image: TensorSpec[] = [{ name: 'pixels', type: 'float32', shape: ['batch', 2, 3] }];
const multi: TensorSpec[] = [
  { name: 'ids', type: 'int64', shape: ['batch', 4] },
  { name: 'mask', type: 'bool', shape: ['batch', 4] },
];
const dynamic: TensorSpec[] = [{ name: 'tokens', type: 'int32', shape: ['batch', 'seq'] }];
/** A state model's inputs: samples batched on axis 0, a scalar sample rate, a state batched on axis 1. */
const state: TensorSpec[] = [
  { name: 'input', type: 'float32', shape: ['batch', 'samples'] },
  { name: 'sr', type: 'int64', shape: [] },
  { name: 'h', type: 'float32', shape: [2, 'batch', 3] },
];
const STATE_AXES = [0, null, 1];
const floats = (b: Buffer) => Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
const int64 = (b: Buffer) => Array.from(new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

const invalid = (fn: () => unknown, message: RegExp) => expect(fn).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT, message: expect.stringMatching(message) }));

describe('encodePayload', () => {
  it('encodes 128 floats as float32 bytes', () => {
    const row = encodePayload(stub, [0], { input: Array.from({ length: 128 }, (_, i) => i / 2) });
    expect(row.dims).toEqual([[128]]);
    expect(Array.from(new Float32Array(row.buffers[0].buffer, row.buffers[0].byteOffset, 128)).slice(0, 3)).toEqual([0, 0.5, 1]);
  });

  it('names the expected shape when the length is wrong', () => {
    invalid(() => encodePayload(stub, [0], { input: [1, 2, 3] }), /^payload\.input: expected float32\[128\] \(128 values\), got 3 values$/);
  });

  it('refuses non-numbers, NaN and Infinity, naming the position', () => {
    const base = Array(128).fill(0.5);
    invalid(() => encodePayload(stub, [0], { input: [...base.slice(1), 'x'] }), /payload\.input\[127\]: expected a finite number, got "x"/);
    invalid(() => encodePayload(stub, [0], { input: [NaN, ...base.slice(1)] }), /payload\.input\[0\]: expected a finite number, got NaN/);
    invalid(() => encodePayload(stub, [0], { input: [...base.slice(1), Infinity] }), /payload\.input\[127\]: expected a finite number, got Infinity/);
  });

  it('refuses a missing input and unknown keys', () => {
    invalid(() => encodePayload(stub, [0], {}), /payload\.input: required, expected float32\[128\]/);
    invalid(() => encodePayload(stub, [0], { input: Array(128).fill(0), extra: 1 }), /payload\.extra: unknown key/);
  });

  it('takes a fully known item shape flat or nested, and checks the nested shape', () => {
    expect(encodePayload(image, [0], { input: [1, 2, 3, 4, 5, 6] }).dims).toEqual([[2, 3]]);
    expect(encodePayload(image, [0], { input: [[1, 2, 3], [4, 5, 6]] }).dims).toEqual([[2, 3]]);
    invalid(() => encodePayload(image, [0], { input: [[1, 2], [3, 4], [5, 6]] }), /expected float32\[2, 3\], got an array of shape \[3, 2\]/);
    invalid(() => encodePayload(image, [0], { input: [[1, 2, 3], [4, 5]] }), /ragged/);
  });

  it('takes one key per input for multi-input models, with integer and boolean types', () => {
    const row = encodePayload(multi, [0, 0], { ids: [1, 2, 3, 4], mask: [true, false, 1, 0] });
    expect(Array.from(new BigInt64Array(row.buffers[0].buffer, row.buffers[0].byteOffset, 4))).toEqual([1n, 2n, 3n, 4n]);
    expect(Array.from(row.buffers[1])).toEqual([1, 0, 1, 0]);
    invalid(() => encodePayload(multi, [0, 0], { ids: [1, 2, 3, 4] }), /payload\.mask: required/);
    invalid(() => encodePayload(multi, [0, 0], { ids: [1, 2, 3, 4.5], mask: [1, 1, 1, 1] }), /payload\.ids\[3\]: expected an int64 integer, got 4\.5/);
    invalid(() => encodePayload(multi, [0, 0], { ids: [1, 2, 3, 4], mask: [1, 1, 1, 2] }), /payload\.mask\[3\]: expected a boolean/);
  });

  it('keeps the shape of a dynamic inner dimension, so rows batch only with rows of that shape', () => {
    expect(encodePayload(dynamic, [0], { input: [1, 2, 3] }).dims).toEqual([[3]]);
    expect(encodePayload(dynamic, [0], { input: [1, 2, 3, 4, 5] }).dims).toEqual([[5]]);
  });
});

describe('checkRow', () => {
  it('accepts what encodePayload made and refuses rows whose bytes do not match their shape', () => {
    const row = encodePayload(stub, [0], { input: Array(128).fill(1) });
    expect(checkRow(stub, [0], row)).toBeUndefined();
    expect(checkRow(stub, [0], { buffers: [row.buffers[0].subarray(4)], dims: [[128]] })).toMatch(/expected 512 bytes, got 508/);
    expect(checkRow(stub, [0], { buffers: [row.buffers[0]], dims: [[64]] })).toMatch(/got shape \[64\]/);
  });
});

describe('inputs batched on another axis, and inputs with none', () => {
  const h = (r: number) => [[r, r + 1, r + 2], [r + 10, r + 11, r + 12]];

  it('takes a row of a state batched on axis 1 as the state without that axis, and a scalar as a bare number', () => {
    const row = encodePayload(state, STATE_AXES, { input: [0.5, 0.25], sr: 16000, h: h(0) });
    expect(row.dims).toEqual([[2], [], [2, 3]]);
    expect(int64(row.buffers[1])).toEqual([16000n]);
    expect(floats(row.buffers[2])).toEqual(h(0).flat());
    expect(encodePayload(state, STATE_AXES, { input: [0.5], sr: [8000], h: h(0) }).dims[1]).toEqual([]);
  });

  it('names the item shape and where the batch sits when a row does not fit', () => {
    invalid(() => encodePayload(state, STATE_AXES, { input: [1], sr: 16000, h: [1, 2, 3] }), /^payload\.h: expected float32\[2, 3\] \(6 values\), got 3 values \(one row of h \[2, batch, 3\], whose batch is axis 1\)$/);
    invalid(() => encodePayload(state, STATE_AXES, { input: [1], sr: 16000.5, h: h(0) }), /^payload\.sr: expected an int64 scalar, got 16000\.5$/);
    invalid(() => encodePayload(state, STATE_AXES, { input: [1], h: h(0) }), /^payload\.sr: required, expected an int64 scalar$/);
  });

  it('splits whole tensors into rows along each input\'s batch axis, giving every row the unbatched value', () => {
    // h as a [2, N=2, 3] tensor: h[i][r] is row r's i-th state vector.
    const stacked = [0, 1].map((i) => [0, 100].map((r) => h(r)[i]));
    const rows = encodeTensors('vad', state, STATE_AXES, [
      { name: 'input', shape: [2, 1], data: [0.5, 0.75] },
      { name: 'sr', shape: [], data: [16000] },
      { name: 'h', shape: [2, 2, 3], data: stacked },
    ]);
    expect(rows.map((r) => r.dims)).toEqual([[[1], [], [2, 3]], [[1], [], [2, 3]]]);
    expect(rows.map((r) => floats(r.buffers[2]))).toEqual([h(0).flat(), h(100).flat()]);
    expect(rows.map((r) => int64(r.buffers[1]))).toEqual([[16000n], [16000n]]);
    expect(rows.map((r) => floats(r.buffers[0]))).toEqual([[0.5], [0.75]]);
  });

  it('refuses tensors whose batch sizes differ along their axes, or that do not fit, showing the batch axis', () => {
    const tensors = (n: number, hShape: number[]) => [
      { name: 'input', shape: [n, 1], data: Array(n).fill(0) },
      { name: 'sr', shape: [], data: [16000] },
      { name: 'h', shape: hShape, data: Array(hShape.reduce((a, b) => a * b, 1)).fill(0) },
    ];
    invalid(() => encodeTensors('vad', state, STATE_AXES, tensors(3, [2, 2, 3])), /every input must have the same batch size along its batch axis: input has 3 at axis 0, h has 2 at axis 1/);
    invalid(() => encodeTensors('vad', state, STATE_AXES, tensors(2, [2, 2, 4])), /shape \[2, 2, 4\] does not fit input h of shape \[2, -1, 3\] \(-1: any size; the batch is axis 1\)/);
    invalid(() => encodeTensors('vad', state, STATE_AXES, [...tensors(1, [2, 1, 3]).slice(0, 1), { name: 'sr', shape: [1], data: [16000] }, tensors(1, [2, 1, 3])[2]]), /shape \[1\] has 1 dimensions; input sr has 0: \[\] \(no batch axis: one value for every row\)/);
  });

  it('takes a whole tensor a request for a model with no batch axis, leading dimensions of 1 optional', () => {
    const fixed: TensorSpec[] = [{ name: 'x', type: 'float32', shape: [1, 'seq'] }];
    expect(encodePayload(fixed, [null], { input: [1, 2, 3] }).dims).toEqual([[1, 3]]);
    expect(encodePayload(fixed, [null], { input: [[1, 2, 3]] }).dims).toEqual([[1, 3]]);
    expect(encodeTensors('fixed', fixed, [null], [{ name: 'x', shape: [1, 3], data: [1, 2, 3] }]).map((r) => r.dims)).toEqual([[[1, 3]]]);
    invalid(() => encodeTensors('fixed', fixed, [null], [{ name: 'x', shape: [2, 3], data: Array(6).fill(0) }]), /does not fit input x of shape \[1, -1\] \(-1: any size; the model has no batch axis: one tensor a request\)/);
  });

  it('checks a row from the queue against the layout', () => {
    const row = encodePayload(state, STATE_AXES, { input: [0.5], sr: 16000, h: h(0) });
    expect(checkRow(state, STATE_AXES, row)).toBeUndefined();
    expect(checkRow(state, STATE_AXES, { ...row, dims: [[1], [], [2, 1, 3]] })).toMatch(/^h: expected float32\[2, 3\], got shape \[2, 1, 3\]$/);
    expect(checkRow(state, STATE_AXES, { ...row, dims: [[1], [1], [2, 3]] })).toMatch(/^sr: expected an int64 scalar, got shape \[1\]$/);
  });
});

describe('arrays lifted from the JSON body (LiftedArray)', () => {
  const big: TensorSpec[] = [{ name: 'input', type: 'float32', shape: ['batch', 3, 10, 20] }];
  const wide: TensorSpec[] = [{ name: 'x', type: 'float64', shape: ['batch', 600] }];
  const ids: TensorSpec[] = [{ name: 'ids', type: 'int64', shape: ['batch', 600] }];
  const rand = seededRandom(5);
  const values = Array.from(Float32Array.from({ length: 600 }, () => rand() * 2 - 1));
  const nested = [0, 1, 2].map((c) => Array.from({ length: 10 }, (_, h) => values.slice((c * 10 + h) * 20, (c * 10 + h + 1) * 20)));
  /** A JSON text parsed twice: as the body parser lifts it, and as JSON.parse alone gives it. */
  const both = (text: string) => {
    const lifted = liftNumberArrays(Buffer.from(text))!;
    return { lifted: JSON.parse(lifted.text, lifted.reviver), plain: JSON.parse(text) };
  };
  const outcome = (fn: () => unknown) => {
    try {
      return { ok: fn() };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };

  it('encodes a lifted payload into the bytes and dimensions of the same payload parsed by JSON.parse', () => {
    const { lifted, plain } = both(JSON.stringify({ input: nested }));
    expect(lifted.input).toBeInstanceOf(LiftedArray);
    expect(encodePayload(big, [0], lifted)).toEqual(encodePayload(big, [0], plain));
    const flat = both(JSON.stringify({ input: values }));
    expect(encodePayload(big, [0], flat.lifted)).toEqual(encodePayload(big, [0], flat.plain));
  });

  it('encodes lifted tensors, flat or nested, as encodeTensors does the parsed ones', () => {
    for (const data of [values, [nested]]) {
      const { lifted, plain } = both(JSON.stringify({ name: 'input', shape: [1, 3, 10, 20], data }));
      expect(encodeTensors('image', big, [0], [lifted])).toEqual(encodeTensors('image', big, [0], [plain]));
    }
  });

  it('encodes what float32 cannot carry (float64, integers) through the checked path, to the same bytes', () => {
    const { lifted, plain } = both(JSON.stringify({ x: values }));
    expect(encodePayload(wide, [0], lifted)).toEqual(encodePayload(wide, [0], plain));
    expect(floats(encodePayload(wide, [0], lifted).buffers[0])).not.toEqual(values.map(Math.fround));
    const ints = both(JSON.stringify({ ids: Array.from({ length: 600 }, (_, i) => i * 1000 - 3) }));
    expect(encodePayload(ids, [0], ints.lifted)).toEqual(encodePayload(ids, [0], ints.plain));
  });

  it.each([
    ['a shape that does not fit', JSON.stringify({ input: nested.slice(0, 2) })],
    ['too many values for the flat form', JSON.stringify({ input: [...values, ...values] })],
    ['integers out of the type', JSON.stringify({ ids: Array.from({ length: 600 }, (_, i) => i * 1e14) })],
    ['fractions for an integer type', JSON.stringify({ ids: values })],
  ])('names %s in the words of the checked path', (_, text) => {
    const { lifted, plain } = both(text);
    const model = 'ids' in plain ? ids : big;
    const expected = outcome(() => encodePayload(model, [0], plain));
    expect(expected.error).toBeDefined();
    expect(outcome(() => encodePayload(model, [0], lifted))).toEqual(expected);
  });

  it('names a lifted tensor that does not fit the shape as it names a parsed one', () => {
    for (const shape of [[1, 3, 10, 21], [2, 3, 10, 20]]) {
      const { lifted, plain } = both(JSON.stringify({ name: 'input', shape, data: values }));
      const expected = outcome(() => encodeTensors('image', big, [0], [plain]));
      expect(expected.error).toBeDefined();
      expect(outcome(() => encodeTensors('image', big, [0], [lifted]))).toEqual(expected);
    }
  });
});
