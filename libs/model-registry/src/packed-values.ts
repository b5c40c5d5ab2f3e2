import { TYPED_ARRAYS, type ElementType } from './protocol';

/**
 * The fast path for numeric JSON: one walk that checks a nested array is rectangular and writes its values into
 * the element type's typed array, allocating nothing per value and building no strings. It only answers yes
 * (the bytes) or no (undefined): on no, the encoder's checked path runs and names what is wrong.
 */

const INT_RANGES: Partial<Record<ElementType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

type Out = InstanceType<(typeof TYPED_ARRAYS)[ElementType]>;

/** Dimensions of a nested array along its first elements: what it claims to be, checked by packNested. */
export function claimedDims(value: unknown): number[] {
  const dims: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    dims.push(level.length);
    level = level[0];
  }
  return dims;
}

/** Writes one innermost array's values at `at`; false on any value the type does not take. */
export function writeLeaves(type: ElementType, leaves: ArrayLike<unknown>, out: Out, at: number): boolean {
  if (type === 'float32' || type === 'float64') {
    const f = out as Float32Array | Float64Array;
    for (let i = 0; i < leaves.length; i++) {
      const v = leaves[i];
      // v - v is 0 only for a finite number.
      if (typeof v !== 'number' || v - v !== 0) return false;
      f[at + i] = v;
    }
    return true;
  }
  const range = INT_RANGES[type];
  for (let i = 0; i < leaves.length; i++) {
    let v = leaves[i];
    if (type === 'bool' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number' || !Number.isInteger(v)) return false;
    if (type === 'bool' ? v !== 0 && v !== 1 : range && (v < range[0] || v > range[1])) return false;
    if (type === 'int64') (out as BigInt64Array)[at + i] = BigInt(v);
    else (out as Uint8Array)[at + i] = v;
  }
  return true;
}

/**
 * The values of `value`, an array of the shape `dims` (all but the last level checked here, the last by
 * writeLeaves), as the element type's bytes in row-major order; undefined when anything does not fit.
 */
export function packNested(type: ElementType, value: unknown, dims: number[]): Buffer | undefined {
  let size = 1;
  for (const d of dims) size *= d;
  const out = new TYPED_ARRAYS[type](size);
  const last = dims.length - 1;
  let at = 0;
  const walk = (level: unknown, depth: number): boolean => {
    if (!Array.isArray(level) || level.length !== dims[depth]) return false;
    if (depth === last) {
      if (!writeLeaves(type, level, out, at)) return false;
      at += level.length;
      return true;
    }
    for (let i = 0; i < level.length; i++) if (!walk(level[i], depth + 1)) return false;
    return true;
  };
  return walk(value, 0) ? Buffer.from(out.buffer, out.byteOffset, out.byteLength) : undefined;
}
