import { createHash } from 'node:crypto';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from './input-encoder';
import type { Signature, TensorSpec } from './protocol';

/**
 * Where each input and output of a model carries the batch. An input with no batch axis is fed once per batch,
 * and rows share a batch only when their values of it are equal. A model with no batch axis at all takes and
 * answers whole tensors, one request per run.
 */
export interface BatchLayout {
  /** Each input's batch axis, in signature order; null: none. */
  inputs: (number | null)[];
  /** Each output's batch axis, in signature order. */
  outputs: (number | null)[];
  /** Every input's and output's batch axis by name, as metadata shows it. */
  axes: Record<string, number | null>;
  /** Why the model runs one request per run, when its batch axes cannot be determined. */
  unbatched?: string;
}

export const NO_LAYOUT: BatchLayout = { inputs: [], outputs: [], axes: {}, unbatched: 'the model is not loaded' };

const isDynamic = (d: number | string | undefined): boolean => typeof d === 'string' || (typeof d === 'number' && d < 0);

/** A shape as messages show it, e.g. `[2, batch, 64]`; an unnamed dynamic dimension is `?`. */
export const formatShape = (shape: (number | string)[]): string => `[${shape.map((d) => (d === '' || (typeof d === 'number' && d < 0) ? '?' : d)).join(', ')}]`;

const invalid = (message: string): never => {
  throw new BalesError(ErrorCode.INVALID_MODEL, `batch_axes in config.json: ${message}`);
};

interface Tensor {
  spec: TensorSpec;
  kind: 'input' | 'output';
}

/**
 * The batch dimension's name is that of dim 0 of the first input whose dim 0 is named. A tensor's batch axis is
 * where that name sits; a tensor without it is batched on a dynamic dim 0 (named otherwise or unnamed), as most
 * exporters write it, and has no batch axis when dim 0 is fixed or it is a scalar.
 */
function detect({ spec, kind }: Tensor, batchName: string | undefined): { axis: number | null; conflict?: string } {
  const at = batchName === undefined ? [] : spec.shape.flatMap((d, i) => (d === batchName ? [i] : []));
  if (at.length > 1) return { axis: null, conflict: `${kind} '${spec.name}' ${formatShape(spec.shape)} has the batch dimension '${batchName}' at axes ${at.join(' and ')}` };
  if (at.length === 1) return { axis: at[0] };
  return { axis: isDynamic(spec.shape[0]) ? 0 : null };
}

/** The override's axis for a tensor, checked against its shape; INVALID_MODEL naming what is wrong. */
function overriddenAxis({ spec, kind }: Tensor, value: unknown): number | null {
  const where = `${kind} '${spec.name}' ${formatShape(spec.shape)}`;
  if (value === null) return null;
  if (!Number.isInteger(value)) return invalid(`${spec.name} must be an axis (an integer) or null, got ${JSON.stringify(value)}`);
  const axis = value as number;
  if (spec.shape.length === 0) return invalid(`${spec.name} is ${axis}, but ${where} is a scalar, with no axis; use null`);
  if (axis < 0 || axis >= spec.shape.length) return invalid(`${spec.name} is ${axis}, but ${where} has axes 0 to ${spec.shape.length - 1}`);
  if (!isDynamic(spec.shape[axis])) return invalid(`${spec.name} is ${axis}, but dimension ${axis} of ${where} is fixed at ${spec.shape[axis]}; a batch axis must be dynamic`);
  return axis;
}

function checkOverride(tensors: Tensor[], override: unknown): Record<string, unknown> {
  if (typeof override !== 'object' || override === null || Array.isArray(override)) {
    return invalid(`expected an object of input and output names to an axis or null, got ${JSON.stringify(override)}`);
  }
  const names = new Set(tensors.map((t) => t.spec.name));
  const unknown = Object.keys(override).find((name) => !names.has(name));
  if (unknown !== undefined) {
    const list = (kind: Tensor['kind']) => tensors.filter((t) => t.kind === kind).map((t) => t.spec.name).join(', ') || 'none';
    invalid(`'${unknown}' is neither an input nor an output of the model (inputs: ${list('input')}; outputs: ${list('output')})`);
  }
  return override as Record<string, unknown>;
}

/** Why axes cannot make batches, or undefined when they can. */
function whyUnbatchable(tensors: Tensor[], axes: (number | null)[]): string | undefined {
  if (!tensors.some((t, i) => t.kind === 'input' && axes[i] !== null)) return 'no input has a dynamic dimension to batch along';
  const output = tensors.find((t, i) => t.kind === 'output' && axes[i] === null);
  if (output) return `output '${output.spec.name}' ${formatShape(output.spec.shape)} has no batch axis, so a batch's results could not be told apart`;
  return undefined;
}

/**
 * The model's batch layout: detected from the signature, each tensor named in config.json's `batch_axes`
 * (`override`) taking the axis given there. A model whose axes cannot be determined runs one request per run; when
 * `batch_axes` is given, that is a mistake instead, and this throws INVALID_MODEL naming it, as for a bad axis.
 */
export function batchLayout(signature: Signature, override?: unknown): BatchLayout {
  const tensors: Tensor[] = [...signature.inputs.map((spec) => ({ spec, kind: 'input' as const })), ...signature.outputs.map((spec) => ({ spec, kind: 'output' as const }))];
  const given = override === undefined ? undefined : checkOverride(tensors, override);
  const batchName = signature.inputs.map((s) => s.shape[0]).find((d): d is string => typeof d === 'string' && d !== '');
  let problem: string | undefined;
  const axes = tensors.map((t) => {
    if (given && Object.hasOwn(given, t.spec.name)) return overriddenAxis(t, given[t.spec.name]);
    const found = detect(t, batchName);
    problem ??= found.conflict;
    return found.axis;
  });
  problem ??= whyUnbatchable(tensors, axes);
  if (problem && given) invalid(`${problem}; name its batch axis in batch_axes`);
  const final = problem ? axes.map(() => null) : axes;
  const n = signature.inputs.length;
  return {
    inputs: final.slice(0, n),
    outputs: final.slice(n),
    axes: Object.fromEntries(tensors.map((t, i) => [t.spec.name, final[i]])),
    ...(problem ? { unbatched: problem } : {}),
  };
}

/** Inputs of at most this many bytes join the batch key as hex; bigger ones by their digest. */
const HEX_KEY_BYTES = 64;

/**
 * What rows of a model must share to run in one batch: every input's item shape, and the values of the inputs that
 * have no batch axis, since a batch feeds those once.
 */
export function batchKey(model: { signature: Signature; batchAxes: Record<string, number | null>; maxBatchSize: number }, row: EncodedRow): string {
  let key = row.dims.map((d) => d.join('x')).join(',');
  // One row a batch has nothing to share.
  if (model.maxBatchSize === 1) return key;
  const inputs = model.signature.inputs;
  for (let i = 0; i < inputs.length; i++) {
    if (model.batchAxes[inputs[i].name] !== null) continue;
    const bytes = row.buffers[i];
    key += `|${bytes.byteLength <= HEX_KEY_BYTES ? bytes.toString('hex') : createHash('sha1').update(bytes).digest('base64')}`;
  }
  return key;
}

/** A row's item seen along the batch axis: `runs` contiguous runs of `runBytes` each, one per index before the axis. */
function runsOf(itemDims: readonly number[], axis: number, width: number): { runs: number; runBytes: number } {
  let runs = 1;
  let inner = width;
  for (let i = 0; i < itemDims.length; i++) {
    if (i < axis) runs *= itemDims[i];
    else inner *= itemDims[i];
  }
  return { runs, runBytes: inner };
}

/**
 * Stacks rows' items (all of shape `itemDims`, `width` bytes a value) into one tensor with the batch inserted at
 * `axis`: out[i, r, j] = row_r[i, j], copied as contiguous runs into `into`, which holds at least the rows' bytes.
 * Returns the tensor's dimensions.
 */
export function stackRows(parts: readonly Buffer[], itemDims: readonly number[], axis: number, width: number, into: Buffer): number[] {
  const { runs, runBytes } = runsOf(itemDims, axis, width);
  let offset = 0;
  for (let o = 0; o < runs; o++) {
    for (const part of parts) offset += part.copy(into, offset, o * runBytes, (o + 1) * runBytes);
  }
  return [...itemDims.slice(0, axis), parts.length, ...itemDims.slice(axis)];
}

/**
 * The inverse of stackRows: a tensor's bytes (of shape `dims`, batch at `axis`) as one buffer per row. Along axis 0
 * the rows are views of `bytes`, without a copy.
 */
export function splitRows(bytes: Buffer, dims: readonly number[], axis: number, width: number): Buffer[] {
  const rows = dims[axis];
  const itemDims = [...dims.slice(0, axis), ...dims.slice(axis + 1)];
  const { runs, runBytes } = runsOf(itemDims, axis, width);
  if (runs === 1) return Array.from({ length: rows }, (_, r) => bytes.subarray(r * runBytes, (r + 1) * runBytes));
  return Array.from({ length: rows }, (_, r) => {
    const row = Buffer.allocUnsafe(runs * runBytes);
    for (let o = 0; o < runs; o++) bytes.copy(row, o * runBytes, (o * rows + r) * runBytes, (o * rows + r + 1) * runBytes);
    return row;
  });
}
