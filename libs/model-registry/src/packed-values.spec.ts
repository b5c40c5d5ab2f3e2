import { claimedDims, packNested } from './packed-values';

const floats = (b: Buffer | undefined) => b && Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));

describe('packNested, the fast path for numeric JSON', () => {
  it('writes a nested array row-major, as flat() would, without any per-value allocation', () => {
    const value = [
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8.5],
      ],
    ];
    expect(claimedDims(value)).toEqual([2, 2, 2]);
    expect(floats(packNested('float32', value, [2, 2, 2]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8.5]);
  });

  it('writes each element type as its own bytes', () => {
    const i64 = packNested('int64', [[1, -2, 9007199254740991]], [1, 3])!;
    expect(Array.from(new BigInt64Array(i64.buffer, i64.byteOffset, 3))).toEqual([1n, -2n, 9007199254740991n]);
    expect(Array.from(packNested('bool', [true, false, 1, 0], [4])!)).toEqual([1, 0, 1, 0]);
    expect(Array.from(packNested('uint8', [0, 255], [2])!)).toEqual([0, 255]);
    const f64 = packNested('float64', [0.1], [1])!;
    expect(new Float64Array(f64.buffer, f64.byteOffset, 1)[0]).toBe(0.1);
  });

  it.each([
    ['a ragged inner array', [[1, 2], [3]], [2, 2]],
    ['an array nested deeper than the rest', [[1, [2]], [3, 4]], [2, 2]],
    ['a level that is not an array', [[1, 2], 3], [2, 2]],
    ['a length other than the claimed one', [1, 2, 3], [4]],
    ['a string', [1, '2'], [2]],
    ['NaN', [1, NaN], [2]],
    ['Infinity', [Infinity], [1]],
    ['null', [null], [1]],
  ])('answers no (undefined) for %s, leaving the message to the checked path', (_, value, dims) => {
    expect(packNested('float32', value, dims)).toBeUndefined();
  });

  it.each([
    ['int8', [128]],
    ['uint8', [-1]],
    ['int32', [1.5]],
    ['int64', [2 ** 60]],
    ['bool', [2]],
    ['bool', ['true']],
  ] as const)('answers no for a value %s does not take: %j', (type, value) => {
    expect(packNested(type, [...value], [1])).toBeUndefined();
  });
});
