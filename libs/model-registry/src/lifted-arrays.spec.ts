import { seededRandom } from '../../../scripts/onnx/onnx-writer';
import { LiftedArray, liftNumberArrays } from './lifted-arrays';

/** Parses a JSON text the way the gateway's body parser does when it lifts. */
function parseLifted(text: string): unknown {
  const lifted = liftNumberArrays(Buffer.from(text));
  return lifted ? JSON.parse(lifted.text, lifted.reviver) : JSON.parse(text);
}

/** What the checked path would write for the same text: JSON.parse's doubles, each stored as a float32. */
const reference = (array: unknown) => Buffer.from(Float32Array.from((array as unknown[]).flat(16) as number[]).buffer);

const body = (input: unknown) => JSON.stringify({ model_id: 'image', payload: { input } });

describe('liftNumberArrays', () => {
  const rand = seededRandom(7);
  // float32 values printed as doubles: what numpy's tolist() or a Float32Array's values give, 16 or 17 digits each.
  const float32Values = Array.from(Float32Array.from({ length: 3000 }, () => rand() * 2 - 1));
  const fiveDigits = Array.from({ length: 3000 }, () => Math.round(rand() * 1e5) / 1e5);

  it.each([
    ['float32 values in 17 digits', float32Values],
    ['values with five decimals', fiveDigits],
    ['integers, zeros and signs', Array.from({ length: 3000 }, (_, i) => (i % 7) - 3)],
    ['exponents', Array.from({ length: 3000 }, (_, i) => Number(`${(i % 9) + 1}.25e${(i % 25) - 12}`))],
  ])('reads %s into the float32 bytes JSON.parse and a Float32Array would give', (_, values) => {
    const nested = [0, 1, 2].map((c) => Array.from({ length: 10 }, (_, h) => values.slice((c * 10 + h) * 100, (c * 10 + h + 1) * 100)));
    const input = (parseLifted(body(nested)) as { payload: { input: LiftedArray } }).payload.input;
    expect(input).toBeInstanceOf(LiftedArray);
    expect(input.dims).toEqual([3, 10, 100]);
    expect(input.bytes('float32')!.equals(reference(nested))).toBe(true);
  });

  it('reads pretty-printed JSON, with whitespace between every token', () => {
    const text = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3000], data: float32Values }] }, null, 2).replace(/,/g, ' ,\r\n\t');
    const data = (parseLifted(text) as { inputs: { data: LiftedArray; shape: number[] }[] }).inputs[0].data;
    expect(data.dims).toEqual([3000]);
    expect(data.bytes('float32')!.equals(reference(float32Values))).toBe(true);
  });

  it('gives any value whose float32 it cannot prove up to JSON.parse: decimals at a float32 rounding midpoint', () => {
    // Halfway between two neighbouring float32s, written with 17 digits: read with doubles, it could round either way.
    const midpoints = Array.from({ length: 300 }, (_, i) => {
      const below = new Float32Array([0.1 + i / 1000]);
      const above = new Float32Array(new Uint32Array([new Uint32Array(below.buffer)[0] + 1]).buffer);
      return ((below[0] + above[0]) / 2).toPrecision(17);
    });
    const text = `{"payload":{"input":[${midpoints.join(',')}]}}`;
    const input = (parseLifted(text) as { payload: { input: LiftedArray } }).payload.input;
    expect(input.float32).toBe(false);
    expect(input.bytes('float32')).toBeUndefined();
    expect(input.toArray()).toEqual(midpoints.map(Number));
  });

  it('agrees with JSON.parse on every float32 it gives, for numbers written every way JSON allows', () => {
    const r = seededRandom(99);
    const digits = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 10)).join('');
    const forms = [
      () => String(Math.fround(r() * 2 - 1)),
      () => (r() * 1e6).toFixed(Math.floor(r() * 12)),
      () => `${r() < 0.5 ? '-' : ''}${Math.floor(r() * 1e9)}`,
      // 1 to 19 significant digits, with exponents.
      () => `${Math.floor(r() * 9) + 1}.${digits(Math.floor(r() * 19))}e${Math.floor(r() * 7) - 3}`.replace('.e', 'e'),
      () => `-0.${'0'.repeat(Math.floor(r() * 4))}${digits(1 + Math.floor(r() * 15))}E+${Math.floor(r() * 5)}`,
      () => (r() * 1e-4).toPrecision(17),
      // Scaled by more than 10^22 either way, as float32 values near zero print.
      () => `${Math.floor(r() * 9) + 1}.${digits(Math.floor(r() * 17))}e${r() < 0.5 ? '-' : ''}${20 + Math.floor(r() * 8)}`.replace('.e', 'e'),
      () => '-0',
      () => '0.0',
    ];
    let given = 0;
    for (let trial = 0; trial < 40; trial++) {
      const tokens = Array.from({ length: 300 }, () => forms[Math.floor(r() * forms.length)]());
      const text = `{"payload":{"input":[${tokens.join(',')}]}}`;
      const input = (parseLifted(text) as { payload: { input: LiftedArray } }).payload.input;
      const expected = (JSON.parse(text) as { payload: { input: number[] } }).payload.input;
      expect(input).toBeInstanceOf(LiftedArray);
      expect(input.toArray()).toEqual(expected);
      const bytes = input.bytes('float32');
      if (bytes) {
        given++;
        expect(bytes.equals(reference(expected))).toBe(true);
      }
    }
    expect(given).toBeGreaterThan(30);
  });

  it('gives integers to integer types and refuses the ones that do not fit, leaving them to the checked path', () => {
    const ints = Array.from({ length: 300 }, (_, i) => i - 100);
    const input = (parseLifted(body(ints)) as { payload: { input: LiftedArray } }).payload.input;
    expect(input.integers).toBe(true);
    expect(Array.from(new Int32Array(input.bytes('int32')!.buffer.slice(0)))).toEqual(ints);
    expect(Array.from(new BigInt64Array(input.bytes('int64')!.buffer.slice(0)))).toEqual(ints.map(BigInt));
    expect(input.bytes('uint8')).toBeUndefined();
    expect(input.bytes('bool')).toBeUndefined();
    // Beyond 2^24 a float32 no longer holds every integer; a fraction is no integer.
    for (const values of [ints.map((v) => v + 2 ** 24), ints.map((v) => v + 0.5)]) {
      const other = (parseLifted(body(values)) as { payload: { input: LiftedArray } }).payload.input;
      expect(other.integers).toBe(false);
      expect(other.bytes('int32')).toBeUndefined();
      expect(other.bytes('float64')).toBeUndefined();
    }
  });

  it.each([
    ['a ragged array', `[${'[1,2],'.repeat(200)}[3]]`],
    ['an array nested deeper than the rest', `[${'[1,2],'.repeat(200)}[3,[4]]]`],
    ['a string among the numbers', `[${'1,'.repeat(300)}"2"]`],
    ['null among the numbers', `[${'1,'.repeat(300)}null]`],
    ['true among the numbers', `[${'1,'.repeat(300)}true]`],
    ['an object among the numbers', `[${'1,'.repeat(300)}{"a":1}]`],
    ['empty arrays', `[${'[],'.repeat(300)}[]]`],
    ['a number with more than 19 digits', `[${'1,'.repeat(300)}12345678901234567890]`],
    ['a number beyond 1e44', `[${'1,'.repeat(300)}1e45]`],
    ['a number below 1e-44', `[${'1,'.repeat(300)}1e-45]`],
    ['fewer than 256 values', `[${'1,'.repeat(200)}1]`],
    ['17 levels of nesting', `${'['.repeat(17)}${'1,'.repeat(300)}1${']'.repeat(17)}`],
  ])('leaves %s to JSON.parse, so the checked path names what is wrong', (_, array) => {
    const text = `{"payload":{"input":${array}}}`;
    expect(liftNumberArrays(Buffer.from(text))).toBeUndefined();
  });

  it('leaves an exponent beyond a million to JSON.parse, even where the zeros of a fraction would cancel it', () => {
    // 10^-1,000,000 × 10^10,000,000: JSON.parse says Infinity, which the checked path refuses.
    const huge = `0.${'0'.repeat(999_999)}1e10000000`;
    const text = `{"payload":{"input":[${huge}${',0'.repeat(300)}]}}`;
    expect(liftNumberArrays(Buffer.from(text))).toBeUndefined();
    expect((JSON.parse(text) as { payload: { input: number[] } }).payload.input[0]).toBe(Infinity);
    // An exponent within the bound is read exactly: 10^-1,000,000 × 10^1,000,000 is 1, as JSON.parse says.
    const one = `{"payload":{"input":[0.${'0'.repeat(999_999)}1e1000000${',0'.repeat(300)}]}}`;
    const input = (parseLifted(one) as { payload: { input: LiftedArray } }).payload.input;
    expect(input.bytes('float32')!.equals(reference((JSON.parse(one) as { payload: { input: number[] } }).payload.input))).toBe(true);
    expect(input.values[0]).toBe(1);
  });

  it.each([
    ['a leading zero', '01'],
    ['a bare point', '1.'],
    ['a point first', '.5'],
    ['a plus sign', '+1'],
    ['a lone minus', '-'],
    ['an empty exponent', '1e'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['a trailing comma', '1,'],
  ])('lifts nothing holding %s, which JSON.parse refuses as it would the whole body', (_, token) => {
    const text = `{"payload":{"input":[${'1,'.repeat(300)}${token}]}}`;
    expect(liftNumberArrays(Buffer.from(text))).toBeUndefined();
    expect(() => JSON.parse(text)).toThrow();
  });

  it('lifts only the values of object members, never arrays inside an array that is not all numbers', () => {
    const many = `[${'1,'.repeat(300)}1]`;
    const parsed = parseLifted(`{"a":[${many},"x"],"b":${many}}`) as { a: unknown[]; b: unknown };
    expect(Array.isArray(parsed.a[0])).toBe(true);
    expect(parsed.b).toBeInstanceOf(LiftedArray);
  });

  it('reads strings as strings: colons, brackets and escaped quotes inside them lift nothing', () => {
    const many = `[${'1,'.repeat(300)}1]`;
    const text = `{"note":"a\\":${many}","input":${many}}`;
    const parsed = parseLifted(text) as { note: string; input: LiftedArray };
    expect(parsed.note).toBe(`a":${many}`);
    expect(parsed.input.dims).toEqual([301]);
  });

  it('gives back its JSON text when serialised, and lifts nothing from a text without numeric arrays', () => {
    const values = fiveDigits.slice(0, 400);
    const parsed = parseLifted(body(values));
    expect(JSON.stringify(parsed)).toBe(body(values));
    expect(liftNumberArrays(Buffer.from(JSON.stringify({ a: 'x'.repeat(20000), b: [1, 2, 3] })))).toBeUndefined();
  });
});
