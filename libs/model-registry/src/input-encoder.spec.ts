import { ErrorCode } from '@bales/errors';
import { checkRow, encodePayload } from './input-encoder';
import type { TensorSpec } from './protocol';

const stub: TensorSpec[] = [{ name: 'input', type: 'float32', shape: ['batch', 128] }];
const image: TensorSpec[] = [{ name: 'pixels', type: 'float32', shape: ['batch', 2, 3] }];
const multi: TensorSpec[] = [
  { name: 'ids', type: 'int64', shape: ['batch', 4] },
  { name: 'mask', type: 'bool', shape: ['batch', 4] },
];
const dynamic: TensorSpec[] = [{ name: 'tokens', type: 'int32', shape: ['batch', 'seq'] }];

const invalid = (fn: () => unknown, message: RegExp) => expect(fn).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT, message: expect.stringMatching(message) }));

describe('encodePayload', () => {
  it('encodes 128 floats as float32 bytes', () => {
    const row = encodePayload(stub, { input: Array.from({ length: 128 }, (_, i) => i / 2) });
    expect(row.dims).toEqual([[128]]);
    expect(Array.from(new Float32Array(row.buffers[0].buffer, row.buffers[0].byteOffset, 128)).slice(0, 3)).toEqual([0, 0.5, 1]);
  });

  it('names the expected shape when the length is wrong', () => {
    invalid(() => encodePayload(stub, { input: [1, 2, 3] }), /^payload\.input: expected float32\[128\] \(128 values\), got 3 values$/);
  });

  it('refuses non-numbers, NaN and Infinity, naming the position', () => {
    const base = Array(128).fill(0.5);
    invalid(() => encodePayload(stub, { input: [...base.slice(1), 'x'] }), /payload\.input\[127\]: expected a finite number, got "x"/);
    invalid(() => encodePayload(stub, { input: [NaN, ...base.slice(1)] }), /payload\.input\[0\]: expected a finite number, got NaN/);
    invalid(() => encodePayload(stub, { input: [...base.slice(1), Infinity] }), /payload\.input\[127\]: expected a finite number, got Infinity/);
  });

  it('refuses a missing input and unknown keys', () => {
    invalid(() => encodePayload(stub, {}), /payload\.input: required, expected float32\[128\]/);
    invalid(() => encodePayload(stub, { input: Array(128).fill(0), extra: 1 }), /payload\.extra: unknown key/);
  });

  it('takes a fully known item shape flat or nested, and checks the nested shape', () => {
    expect(encodePayload(image, { input: [1, 2, 3, 4, 5, 6] }).dims).toEqual([[2, 3]]);
    expect(encodePayload(image, { input: [[1, 2, 3], [4, 5, 6]] }).dims).toEqual([[2, 3]]);
    invalid(() => encodePayload(image, { input: [[1, 2], [3, 4], [5, 6]] }), /expected float32\[2, 3\], got an array of shape \[3, 2\]/);
    invalid(() => encodePayload(image, { input: [[1, 2, 3], [4, 5]] }), /ragged/);
  });

  it('takes one key per input for multi-input models, with integer and boolean types', () => {
    const row = encodePayload(multi, { ids: [1, 2, 3, 4], mask: [true, false, 1, 0] });
    expect(Array.from(new BigInt64Array(row.buffers[0].buffer, row.buffers[0].byteOffset, 4))).toEqual([1n, 2n, 3n, 4n]);
    expect(Array.from(row.buffers[1])).toEqual([1, 0, 1, 0]);
    invalid(() => encodePayload(multi, { ids: [1, 2, 3, 4] }), /payload\.mask: required/);
    invalid(() => encodePayload(multi, { ids: [1, 2, 3, 4.5], mask: [1, 1, 1, 1] }), /payload\.ids\[3\]: expected an int64 integer, got 4\.5/);
    invalid(() => encodePayload(multi, { ids: [1, 2, 3, 4], mask: [1, 1, 1, 2] }), /payload\.mask\[3\]: expected a boolean/);
  });

  it('keeps the shape of a dynamic inner dimension, so rows batch only with rows of that shape', () => {
    expect(encodePayload(dynamic, { input: [1, 2, 3] }).dims).toEqual([[3]]);
    expect(encodePayload(dynamic, { input: [1, 2, 3, 4, 5] }).dims).toEqual([[5]]);
  });
});

describe('checkRow', () => {
  it('accepts what encodePayload made and refuses rows whose bytes do not match their shape', () => {
    const row = encodePayload(stub, { input: Array(128).fill(1) });
    expect(checkRow(stub, row)).toBeUndefined();
    expect(checkRow(stub, { buffers: [row.buffers[0].subarray(4)], dims: [[128]] })).toMatch(/expected 512 bytes, got 508/);
    expect(checkRow(stub, { buffers: [row.buffers[0]], dims: [[64]] })).toMatch(/got shape \[64\]/);
  });
});
