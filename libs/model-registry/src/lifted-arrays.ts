import { randomBytes } from 'node:crypto';
import { TYPED_ARRAYS, type ElementType } from './protocol';
import { writeLeaves } from './packed-values';

/**
 * Numeric arrays read straight from a JSON body's bytes into a Float32Array, so an image-sized tensor never
 * becomes a JavaScript array: JSON.parse of 27,648 numbers builds arrays the body pipe and the encoder then walk,
 * and the garbage collector follows. An array is lifted only when it is a rectangular nest of numbers and every
 * value's float32 is provably the one JSON.parse and a Float32Array would give; anything else stays in the text for
 * JSON.parse, so every error message is the one the checked path builds.
 */

/** Bodies below this size are parsed as they are: lifting pays for itself on tensors, not on envelopes. */
export const LIFT_MIN_BODY_BYTES = 16 * 1024;
/** Arrays with fewer values stay in the text. */
const LIFT_MIN_VALUES = 256;
/** Deeper nests stay in the text (an ONNX tensor rarely has more than 8 dimensions). */
const MAX_RANK = 16;
/** The largest integer a float32 holds exactly. */
const FLOAT32_EXACT_INT = 2 ** 24;
/**
 * A value of 16 to 19 digits, or scaled by more than 10^22, read with doubles is within 2^-49.6 of the decimal (a
 * rounding for each digit past 2^53, two for the scaling); one whose float32 is the same 2^-48 either side is that
 * decimal's float32 whatever the error.
 */
const MARGIN = 2 ** -48;
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/** One lifted array: its dimensions, its values as float32, and its own JSON text for any other use. */
export class LiftedArray {
  constructor(
    readonly dims: number[],
    readonly values: Float32Array,
    /** Every value is the float32 JSON.parse and a Float32Array would give. */
    readonly float32: boolean,
    /** Every value is an integer of magnitude at most 2^24, so `values` holds it exactly. */
    readonly integers: boolean,
    private readonly source: Buffer,
  ) {}

  get count(): number {
    return this.values.length;
  }

  /** The array as JSON.parse gives it: the path that checks every value and names what is wrong. */
  toArray(): unknown[] {
    return JSON.parse(this.source.toString('utf8')) as unknown[];
  }

  toJSON(): unknown[] {
    return this.toArray();
  }

  /** The values as the element type's bytes, or undefined where this array cannot say them exactly. */
  bytes(type: ElementType): Buffer | undefined {
    if (type === 'float32' && this.float32) return Buffer.from(this.values.buffer, this.values.byteOffset, this.values.byteLength);
    if (!this.integers || type === 'float32') return undefined;
    const out = new TYPED_ARRAYS[type](this.values.length);
    return writeLeaves(type, this.values, out, 0) ? Buffer.from(out.buffer, out.byteOffset, out.byteLength) : undefined;
  }
}

/** What a JSON text with its numeric arrays lifted out leaves: the rest, where a placeholder string stands for each. */
export interface Lifted {
  text: string;
  /** JSON.parse's reviver that puts each array back in its placeholder's place. */
  reviver: (key: string, value: unknown) => unknown;
}

// Unguessable, so no client's string is taken for one; a client that spelled it would only get its own values.
const PLACEHOLDER = `bales-lifted-${randomBytes(12).toString('hex')}-`;

/**
 * Values are read into this scratch array, then copied out at their count. It grows to the largest array seen and is
 * kept: at most twice MAX_BODY_BYTES, since a JSON value takes at least 2 bytes and a float32 4.
 */
let scratch = new Float32Array(1 << 16);

const isSpace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9;

/** An array scanned into scratch: where it ends, its dimensions, how many values, and what they can be given as. */
interface Scan {
  end: number;
  dims: number[];
  count: number;
  float32: boolean;
  integers: boolean;
}

/**
 * Reads the array at `start` (a `[`) if it is a rectangular nest of JSON numbers, into scratch; returns what it read,
 * or undefined. A number with more than 19 digits or a decimal exponent beyond 44 is
 * left to JSON.parse. One function with its state in locals: this loop is the lift's whole cost.
 */
function scanArray(buf: Buffer, start: number): Scan | undefined {
  let out = scratch;
  let n = 0;
  let allFloat32 = true;
  let allIntegers = true;
  let pos = start;
  // The first descent fixes the rank: the innermost level holds numbers, every other level arrays.
  let leaf = -1;
  for (;;) {
    const c = buf[pos];
    if (c === 91) {
      if (++leaf >= MAX_RANK) return undefined;
      pos++;
    } else if (isSpace(c)) pos++;
    else break;
  }
  const dims = new Array<number>(leaf + 1).fill(-1);
  const counts = new Array<number>(leaf + 1).fill(0);
  let depth = leaf;
  for (;;) {
    // An element at `depth`.
    let c = buf[pos];
    while (c <= 32 && isSpace(c)) c = buf[++pos];
    if (depth < leaf) {
      if (c !== 91) return undefined;
      pos++;
      counts[++depth] = 0;
      continue;
    }
    const negative = c === 45;
    if (negative) c = buf[++pos];
    let mantissa = 0;
    let digits = 0;
    let exponent = 0;
    let integral = true;
    if (c === 48) c = buf[++pos];
    else if (c >= 49 && c <= 57) {
      const first = pos;
      do {
        mantissa = mantissa * 10 + (c - 48);
        c = buf[++pos];
      } while (c >= 48 && c <= 57);
      digits = pos - first;
    } else return undefined;
    if (c === 46) {
      c = buf[++pos];
      if (!(c >= 48 && c <= 57)) return undefined;
      integral = false;
      const point = pos;
      // Zeros before a fraction's first significant digit are not digits of the mantissa.
      if (mantissa === 0) while (c === 48) c = buf[++pos];
      const significant = pos;
      while (c >= 48 && c <= 57) {
        mantissa = mantissa * 10 + (c - 48);
        c = buf[++pos];
      }
      digits += pos - significant;
      exponent = point - pos;
    }
    if (c === 101 || c === 69) {
      c = buf[++pos];
      let negativeExponent = false;
      if (c === 43 || c === 45) {
        negativeExponent = c === 45;
        c = buf[++pos];
      }
      if (!(c >= 48 && c <= 57)) return undefined;
      let e = 0;
      do {
        e = e * 10 + (c - 48);
        // Kept exact: leading zeros of a fraction could cancel an exponent that was only capped.
        if (e > 1e6) return undefined;
        c = buf[++pos];
      } while (c >= 48 && c <= 57);
      exponent += negativeExponent ? -e : e;
      integral = false;
    }
    if (digits > 19 || exponent < -44 || exponent > 44) return undefined;
    // Up to 15 digits and 10^22, one correctly rounded operation on exact operands: the double JSON.parse gives.
    // Beyond either, two more roundings at most, which MARGIN covers.
    let value: number;
    if (exponent >= -22 && exponent <= 22) value = exponent < 0 ? mantissa / POW10[-exponent] : mantissa * POW10[exponent];
    else value = exponent < 0 ? mantissa / POW10[22] / POW10[-exponent - 22] : mantissa * POW10[22] * POW10[exponent - 22];
    if (negative) value = -value;
    if (digits > 15 || exponent < -22 || exponent > 22) {
      const single = Math.fround(value);
      if (Math.fround(value * (1 - MARGIN)) !== single || Math.fround(value * (1 + MARGIN)) !== single) allFloat32 = false;
    }
    if (allIntegers && (!integral || value > FLOAT32_EXACT_INT || value < -FLOAT32_EXACT_INT)) allIntegers = false;
    if (n === out.length) {
      const grown = new Float32Array(out.length * 2);
      grown.set(out);
      out = scratch = grown;
    }
    // Stored as float32, rounded once from the double.
    out[n++] = value;
    counts[depth]++;
    // What follows it: more elements, or the end of one or more arrays.
    for (;;) {
      while (c <= 32 && isSpace(c)) c = buf[++pos];
      if (c === 44) {
        pos++;
        break;
      }
      if (c !== 93) return undefined;
      if (dims[depth] !== -1 && dims[depth] !== counts[depth]) return undefined;
      dims[depth] = counts[depth];
      c = buf[++pos];
      if (--depth < 0) return { end: pos, dims, count: n, float32: allFloat32, integers: allIntegers };
      counts[depth]++;
    }
  }
}

/**
 * Lifts the numeric arrays that are values of object members (`"input": [[...]]`, `"data": [...]`) out of a JSON
 * text; undefined when it holds none worth lifting. Only member values: an array inside an array that is not all
 * numbers stays whole in the text, so its message names the element that is wrong as it always did.
 */
export function liftNumberArrays(body: Buffer): Lifted | undefined {
  const arrays: LiftedArray[] = [];
  const pieces: string[] = [];
  let copied = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    if (c !== 58) continue;
    let start = i + 1;
    while (isSpace(body[start])) start++;
    if (body[start] !== 91) continue;
    const scan = scanArray(body, start);
    if (!scan) continue;
    i = scan.end - 1;
    if (scan.count < LIFT_MIN_VALUES) continue;
    pieces.push(body.toString('utf8', copied, start), `"${PLACEHOLDER}${arrays.length}"`);
    copied = scan.end;
    arrays.push(new LiftedArray(scan.dims, scratch.slice(0, scan.count), scan.float32, scan.integers, body.subarray(start, scan.end)));
  }
  if (arrays.length === 0) return undefined;
  pieces.push(body.toString('utf8', copied));
  const reviver = (_key: string, value: unknown): unknown =>
    typeof value === 'string' && value.startsWith(PLACEHOLDER) ? (arrays[Number(value.slice(PLACEHOLDER.length))] ?? value) : value;
  return { text: pieces.join(''), reviver };
}
