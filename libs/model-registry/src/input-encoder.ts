import { BalesError, ErrorCode } from '@bales/errors';
import { formatShape, splitRows } from './batch-axes';
import { LiftedArray } from './lifted-arrays';
import { claimedDims, packNested } from './packed-values';
import { TYPED_ARRAYS, type ElementType, type TensorSpec } from './protocol';

/**
 * One request's inputs, ready to stack into a batch: bytes and item shape per model input, in signature order.
 * An item is the input without its batch axis; an input with no batch axis is whole.
 */
export interface EncodedRow {
  buffers: Buffer[];
  dims: number[][];
  /** Answer with every output tensor (the Open Inference Protocol) instead of the model's task result. */
  raw?: boolean;
}

const INT_RANGES: Partial<Record<ElementType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The shape of one item: the model's shape without its batch axis (`axis`), or all of it when it has none. */
export function itemShape(spec: TensorSpec, axis: number | null): (number | string)[] {
  if (axis === null) return spec.shape;
  return axis === 0 ? spec.shape.slice(1) : [...spec.shape.slice(0, axis), ...spec.shape.slice(axis + 1)];
}

/** The input's element type and item shape as an error message names it, e.g. `float32[128]`; `?` is any size. */
export function formatItemSpec(spec: TensorSpec, axis: number | null): string {
  const shape = itemShape(spec, axis).map((d) => (typeof d === 'number' && d >= 0 ? d : '?'));
  return shape.length === 0 ? `an ${spec.type} scalar` : `${spec.type}[${shape.join(', ')}]`;
}

/** Where a request's item sits in the input, for messages about an input batched on another axis than the first. */
const batchNote = (spec: TensorSpec, axis: number | null): string =>
  axis !== null && axis > 0 ? ` (one row of ${spec.name} ${formatShape(spec.shape)}, whose batch is axis ${axis})` : '';

const fail = (message: string): never => {
  throw new BalesError(ErrorCode.INVALID_INPUT, message);
};

/** Dimensions of a nested array, checking it is rectangular. */
function shapeOf(value: unknown, where: string): number[] {
  const dims: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    dims.push(level.length);
    level = level[0];
  }
  const check = (v: unknown, depth: number, path: string): void => {
    if (depth === dims.length) {
      if (Array.isArray(v)) fail(`${path}: nested deeper than the rest of the array`);
      return;
    }
    if (!Array.isArray(v) || v.length !== dims[depth]) fail(`${path}: ragged array, expected ${dims[depth]} elements at depth ${depth}`);
    for (let i = 0; i < (v as unknown[]).length; i++) check((v as unknown[])[i], depth + 1, `${path}[${i}]`);
  };
  if (dims.length > 1) check(value, 0, where);
  return dims;
}

/** An item that does not fit: named by its value count when flat for a fully known shape (`size` >= 0), else by its shape. */
function notFitting(spec: TensorSpec, axis: number | null, claimed: number[], count: number, size: number, where: string): never {
  const got = size >= 0 && claimed.length === 1 ? ` (${size} values), got ${count} values` : `, got an array of shape [${claimed.join(', ')}]`;
  return fail(`${where}: expected ${formatItemSpec(spec, axis)}${got}${batchNote(spec, axis)}`);
}

function resolveDims(spec: TensorSpec, axis: number | null, claimed: number[], count: number, where: string): number[] {
  const expected = itemShape(spec, axis);
  const known = expected.every((d) => typeof d === 'number' && d >= 0);
  const expectedSize = known ? (expected as number[]).reduce((a, b) => a * b, 1) : -1;
  // A flat array fills a fully known item shape in row-major order.
  if (claimed.length === 1 && known && expected.length !== 1) {
    if (count !== expectedSize) notFitting(spec, axis, claimed, count, expectedSize, where);
    return expected as number[];
  }
  // Leading dimensions fixed at 1 may be left out: a model without a batch axis often has a batch of exactly 1.
  const missing = expected.length - claimed.length;
  const given = missing > 0 && expected.slice(0, missing).every((d) => d === 1) ? [...Array<number>(missing).fill(1), ...claimed] : claimed;
  if (given.length !== expected.length) notFitting(spec, axis, claimed, count, expectedSize, where);
  for (let i = 0; i < expected.length; i++) {
    const d = expected[i];
    if (typeof d === 'number' && d >= 0 && d !== given[i]) notFitting(spec, axis, claimed, count, expectedSize, where);
    if (given[i] === 0) fail(`${where}: dimension ${i} is empty`);
  }
  return given;
}

// Numbers are named as themselves: JSON.stringify would call Infinity and NaN "null".
const notFinite = (where: string, i: number, v: unknown): never =>
  fail(`${where}[${i}]: expected a finite number, got ${typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v))}`);

/** Checks every value against the element type and writes them as that type's bytes. */
function toBytes(type: ElementType, flat: unknown[], where: string): Buffer {
  const out = new TYPED_ARRAYS[type](flat.length);
  if (type === 'float32' || type === 'float64') {
    // The common case, kept to one check per value.
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) notFinite(where, i, v);
      out[i] = v as number;
    }
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }
  const range = INT_RANGES[type];
  for (let i = 0; i < flat.length; i++) {
    let v = flat[i];
    if (type === 'bool' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number' || !Number.isFinite(v)) notFinite(where, i, v);
    const n = v as number;
    if (type === 'bool' && n !== 0 && n !== 1) fail(`${where}[${i}]: expected a boolean (true, false, 0 or 1), got ${n}`);
    if (range && (!Number.isInteger(n) || n < range[0] || n > range[1])) fail(`${where}[${i}]: expected an ${type} integer, got ${n}`);
    out[i] = (type === 'int64' ? BigInt(n) : n) as never;
  }
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function elementType(spec: TensorSpec, where: string): ElementType {
  if (!(spec.type in TYPED_ARRAYS)) fail(`${where}: the model's input ${spec.name} has unsupported element type ${spec.type}`);
  return spec.type as ElementType;
}

/** resolveDims as a yes or no, for the fast path. */
function fits(spec: TensorSpec, axis: number | null, dims: number[], count: number): number[] | undefined {
  try {
    return resolveDims(spec, axis, dims, count, '');
  } catch {
    return undefined;
  }
}

/** A scalar item given as a bare value, e.g. a sample rate of 16000. */
function encodeScalar(type: ElementType, spec: TensorSpec, axis: number | null, value: unknown, where: string): { buffer: Buffer; dims: number[] } {
  const buffer = packNested(type, [value], [1]);
  if (!buffer) fail(`${where}: expected ${formatItemSpec(spec, axis)}, got ${typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value))}`);
  return { buffer: buffer!, dims: [] };
}

function encodeOne(spec: TensorSpec, axis: number | null, value: unknown, where: string): { buffer: Buffer; dims: number[] } {
  const type = elementType(spec, where);
  if (value instanceof LiftedArray) {
    const liftedDims = fits(spec, axis, value.dims, value.count);
    const lifted = liftedDims && value.bytes(type);
    if (liftedDims && lifted) return { buffer: lifted, dims: liftedDims };
    value = value.toArray();
  }
  if (!Array.isArray(value)) {
    if (itemShape(spec, axis).length === 0) return encodeScalar(type, spec, axis, value, where);
    fail(`${where}: expected ${formatItemSpec(spec, axis)} as an array, got ${value === null ? 'null' : typeof value}`);
  }
  const claimed = claimedDims(value);
  const fastDims = fits(spec, axis, claimed, claimed.reduce((a, b) => a * b, 1));
  const fast = fastDims && packNested(type, value, claimed);
  if (fastDims && fast) return { buffer: fast, dims: fastDims };
  // Something is wrong: the checked path below finds it and says what.
  const given = shapeOf(value, where);
  const flat: unknown[] = given.length > 1 ? (value as unknown[]).flat(given.length - 1) : (value as unknown[]);
  const dims = resolveDims(spec, axis, given, flat.length, where);
  return { buffer: toBytes(type, flat, where), dims };
}

/** One named input of a tensor-form request (the Open Inference Protocol's form). */
export interface TensorInput {
  name: string;
  shape: number[];
  /** Values, flat in row-major order or nested; or a Buffer of the element type's little-endian bytes (binary tensor data). */
  data: unknown;
}

/** Checks binary tensor data against the shape and element type; its bytes are the rows' bytes as they are. */
function rawBytes(type: ElementType, shape: number[], data: Buffer, where: string): Buffer {
  const size = shape.reduce((a, b) => a * b, 1);
  const width = TYPED_ARRAYS[type].BYTES_PER_ELEMENT;
  if (data.byteLength !== size * width) fail(`${where}: shape [${shape.join(', ')}] needs ${size * width} bytes of ${type}, binary data has ${data.byteLength}`);
  if (type === 'bool') {
    const i = data.findIndex((b) => b > 1);
    if (i >= 0) fail(`${where}[${i}]: expected a boolean (byte 0 or 1), got ${data[i]}`);
  }
  return data;
}

/** Checks a tensor's values (flat or nested) against the shape and element type, and writes them as bytes. */
function arrayBytes(type: ElementType, shape: number[], data: unknown, where: string): Buffer {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data instanceof LiftedArray) {
    const lifted = (data.dims.length === 1 ? data.count === size : data.dims.join(',') === shape.join(',')) && data.bytes(type);
    if (lifted) return lifted;
    data = data.toArray();
  }
  if (!Array.isArray(data)) fail(`${where}: data must be an array`);
  const claimed = claimedDims(data);
  const fast = claimed.length === 1 ? packNested(type, data, [size]) : claimed.join(',') === shape.join(',') ? packNested(type, data, shape) : undefined;
  if (fast) return fast;
  // Something is wrong: the checked path below finds it and says what.
  const nested = shapeOf(data, where);
  if (nested.length > 1 && nested.join(',') !== shape.join(',')) fail(`${where}: nested data of shape [${nested.join(', ')}] does not match shape [${shape.join(', ')}]`);
  const flat: unknown[] = nested.length > 1 ? (data as unknown[]).flat(nested.length - 1) : (data as unknown[]);
  if (flat.length !== size) fail(`${where}: shape [${shape.join(', ')}] needs ${size} values, data has ${flat.length}`);
  return toBytes(type, flat, where);
}

/** The input's shape as a tensor must fit it, e.g. `[2, -1, 64] (-1: any size; the batch is axis 1)`. */
function formatTensorSpec(spec: TensorSpec, axis: number | null, unbatched: boolean): string {
  const shape = `[${spec.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)).join(', ')}]`;
  const dynamic = spec.shape.some((d) => typeof d !== 'number' || d < 0) ? '-1: any size' : '';
  const batch = unbatched ? 'the model has no batch axis: one tensor a request' : axis === null ? 'no batch axis: one value for every row' : axis > 0 ? `the batch is axis ${axis}` : '';
  const notes = [dynamic, batch].filter((n) => n !== '').join('; ');
  return notes ? `${shape} (${notes})` : shape;
}

/**
 * Encodes a whole tensor, given flat in row-major order, nested or as binary tensor data: into one buffer per row
 * along its batch axis, or, for an input with none, one buffer for every row. Throws INVALID_INPUT naming what is
 * wrong.
 */
function encodeTensorRows(spec: TensorSpec, axis: number | null, unbatched: boolean, shape: number[], data: unknown, where: string): { rows?: Buffer[]; whole?: Buffer; itemDims: number[] } {
  const type = elementType(spec, where);
  const wanted = () => formatTensorSpec(spec, axis, unbatched);
  if (shape.length !== spec.shape.length) fail(`${where}: shape [${shape.join(', ')}] has ${shape.length} dimensions; input ${spec.name} has ${spec.shape.length}: ${wanted()}`);
  if (axis !== null && shape[axis] < 1) fail(`${where}: the batch dimension (axis ${axis}) must be at least 1`);
  const fixedMismatch = spec.shape.some((d, i) => i !== axis && typeof d === 'number' && d >= 0 && d !== shape[i]);
  if (shape.some((d) => !Number.isInteger(d) || d < 1) || fixedMismatch) fail(`${where}: shape [${shape.join(', ')}] does not fit input ${spec.name} of shape ${wanted()}`);
  const bytes = Buffer.isBuffer(data) ? rawBytes(type, shape, data, where) : arrayBytes(type, shape, data, where);
  if (axis === null) return { whole: bytes, itemDims: shape };
  return { rows: splitRows(bytes, shape, axis, TYPED_ARRAYS[type].BYTES_PER_ELEMENT), itemDims: [...shape.slice(0, axis), ...shape.slice(axis + 1)] };
}

/**
 * Encodes a tensor-form request: one tensor per model input, named as the model names it, all with the same batch
 * size N along their batch axes, into N rows; an input with no batch axis is given once and joins every row.
 * Throws INVALID_INPUT naming what is wrong.
 */
export function encodeTensors(modelId: string, inputs: TensorSpec[], axes: (number | null)[], tensors: TensorInput[]): EncodedRow[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  if (byName.size !== tensors.length) fail('an input name appears twice');
  const unknown = tensors.find((t) => !inputs.some((spec) => spec.name === t.name));
  if (unknown) fail(`unknown input '${unknown.name}'; model '${modelId}' takes ${inputs.map((s) => s.name).join(', ')}`);
  const unbatched = axes.every((a) => a === null);
  const encoded = inputs.map((spec, i) => {
    const tensor = byName.get(spec.name);
    if (!tensor) fail(`missing input '${spec.name}'`);
    return encodeTensorRows(spec, axes[i], unbatched, tensor!.shape, tensor!.data, `input '${spec.name}'`);
  });
  const batched = encoded.flatMap((e, i) => (e.rows ? [{ name: inputs[i].name, axis: axes[i]!, n: e.rows.length }] : []));
  const n = batched[0]?.n ?? 1;
  const other = batched.find((b) => b.n !== n);
  if (other) {
    const sizes = batched.map((b) => `${b.name} has ${b.n} at axis ${b.axis}`).join(', ');
    fail(`every input must have the same batch size along its batch axis: ${sizes}`);
  }
  return Array.from({ length: n }, (_, r) => ({ buffers: encoded.map((e) => e.rows?.[r] ?? e.whole!), dims: encoded.map((e) => e.itemDims), raw: true }));
}

/**
 * Checks a request payload against a model's inputs (`axes`: each one's batch axis) and encodes it: each input's item,
 * its shape without the batch axis, or the whole input when it has none. A single-input model takes `input` (or its
 * input's own name); a multi-input model takes one key per input.
 */
export function encodePayload(inputs: TensorSpec[], axes: (number | null)[], payload: Record<string, unknown>): EncodedRow {
  const row: EncodedRow = { buffers: [], dims: [] };
  if (inputs.length === 1) {
    const spec = inputs[0];
    const key = 'input' in payload ? 'input' : spec.name;
    const extra = Object.keys(payload).filter((k) => k !== key);
    if (!(key in payload)) fail(`payload.input: required, expected ${formatItemSpec(spec, axes[0])}`);
    if (extra.length) fail(`payload.${extra[0]}: unknown key; this model takes only payload.input (${formatItemSpec(spec, axes[0])})`);
    const { buffer, dims } = encodeOne(spec, axes[0], payload[key], `payload.${key}`);
    row.buffers.push(buffer);
    row.dims.push(dims);
    return row;
  }
  const names = new Set(inputs.map((s) => s.name));
  const unknown = Object.keys(payload).find((k) => !names.has(k));
  if (unknown !== undefined) fail(`payload.${unknown}: unknown input; this model takes ${inputs.map((s, i) => `${s.name} (${formatItemSpec(s, axes[i])})`).join(', ')}`);
  inputs.forEach((spec, i) => {
    if (!(spec.name in payload)) fail(`payload.${spec.name}: required, expected ${formatItemSpec(spec, axes[i])}`);
    const { buffer, dims } = encodeOne(spec, axes[i], payload[spec.name], `payload.${spec.name}`);
    row.buffers.push(buffer);
    row.dims.push(dims);
  });
  return row;
}

const BYTES: Record<ElementType, number> = { float32: 4, float64: 8, int8: 1, uint8: 1, int32: 4, int64: 8, bool: 1 };

/**
 * Re-checks a row that came back from Redis against the model's inputs and their batch axes, so one malformed row
 * cannot fail a whole batch. Returns the problem, or undefined when the row fits.
 */
export function checkRow(inputs: TensorSpec[], axes: (number | null)[], row: EncodedRow): string | undefined {
  if (row.buffers.length !== inputs.length || row.dims.length !== inputs.length) return `expected ${inputs.length} inputs`;
  for (let i = 0; i < inputs.length; i++) {
    const expected = itemShape(inputs[i], axes[i]);
    const dims = row.dims[i];
    if (dims.length !== expected.length || expected.some((d, j) => typeof d === 'number' && d >= 0 && d !== dims[j])) {
      return `${inputs[i].name}: expected ${formatItemSpec(inputs[i], axes[i])}, got shape [${dims.join(', ')}]`;
    }
    const bytes = dims.reduce((a, b) => a * b, 1) * (BYTES[inputs[i].type as ElementType] ?? NaN);
    if (row.buffers[i].byteLength !== bytes) return `${inputs[i].name}: expected ${bytes} bytes, got ${row.buffers[i].byteLength}`;
  }
  return undefined;
}
