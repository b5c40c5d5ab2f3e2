import type { RowResult, Task } from './protocol';

/** The part of an ONNX Runtime output tensor post-processing needs. */
export interface OutputTensor {
  dims: readonly number[];
  data: ArrayLike<number | bigint | string | boolean>;
}

const toNumber = (v: number | bigint | string | boolean): number => (typeof v === 'number' ? v : Number(v));
const toJson = (v: number | bigint | string | boolean): number | string | boolean => (typeof v === 'bigint' ? Number(v) : v);

/**
 * An output split along its batch axis (null: the output is the one row's whole answer): each row holds `runs`
 * contiguous runs of `run` values, one per index before the axis.
 */
interface RowSplit {
  tensor: OutputTensor;
  runs: number;
  run: number;
}

function rowSplit(tensor: OutputTensor, axis: number | null): RowSplit {
  let runs = 1;
  let run = axis === null ? tensor.data.length : 1;
  if (axis !== null) tensor.dims.forEach((d, i) => (i < axis ? (runs *= d) : i > axis ? (run *= d) : 0));
  return { tensor, runs, run };
}

/** One row's values of a split output, in row-major order. */
function rowValues<T>({ tensor, runs, run }: RowSplit, rows: number, row: number, convert: (v: number | bigint | string | boolean) => T): T[] {
  const out = new Array<T>(runs * run);
  let k = 0;
  for (let o = 0; o < runs; o++) {
    const start = (o * rows + row) * run;
    for (let j = 0; j < run; j++) out[k++] = convert(tensor.data[start + j]);
  }
  return out;
}

/** A row's shape in an output: the output's without its batch axis. */
const rowShape = (dims: readonly number[], axis: number | null): number[] => (axis === null ? [...dims] : [...dims.slice(0, axis), ...dims.slice(axis + 1)]);

/** Argmax plus its probability. Scores that are not already a distribution get a softmax first. */
export function classify(scores: number[], labels?: string[]): RowResult {
  let best = 0;
  let sum = 0;
  let isDistribution = true;
  for (let i = 0; i < scores.length; i++) {
    if (scores[i] > scores[best]) best = i;
    if (scores[i] < 0 || scores[i] > 1) isDistribution = false;
    sum += scores[i];
  }
  let confidence = scores[best];
  if (!isDistribution || Math.abs(sum - 1) > 1e-3) {
    let z = 0;
    for (const s of scores) z += Math.exp(s - scores[best]);
    confidence = 1 / z;
  }
  const result: RowResult = { label: best, confidence };
  if (labels?.[best] !== undefined) result.label_name = labels[best];
  return result;
}

/**
 * Turns a batch's output tensors into one result per row, by task, each output split along its batch axis
 * (`axes`, by output name). Rows marked in rawRows (requests of the Open Inference Protocol) get every output
 * tensor instead, whatever the model's task.
 */
export function postprocess(
  task: Task,
  rows: number,
  outputs: Record<string, OutputTensor>,
  axes: Record<string, number | null>,
  labels?: string[],
  rawRows?: boolean[],
): RowResult[] {
  const names = Object.keys(outputs);
  for (const name of names) {
    const axis = axes[name] ?? null;
    // A batch axis guessed from a dynamic dim 0 that is not the batch (a list of detections) would slice rows wrongly.
    if (axis !== null && outputs[name].dims[axis] !== rows) {
      throw new Error(`output '${name}' has ${outputs[name].dims[axis]} along its batch axis ${axis} for a batch of ${rows}; config.json batch_axes can say where its batch is (null for none)`);
    }
  }
  const splits = names.map((name) => rowSplit(outputs[name], axes[name] ?? null));
  const shapes = names.map((name) => rowShape(outputs[name].dims, axes[name] ?? null));
  const results = new Array<RowResult>(rows);
  for (let r = 0; r < rows; r++) {
    switch (rawRows?.[r] ? 'raw' : task) {
      case 'classification':
        results[r] = classify(rowValues(splits[0], rows, r, toNumber), labels);
        break;
      case 'regression':
        results[r] = { values: rowValues(splits[0], rows, r, toNumber) };
        break;
      case 'embedding':
        results[r] = { embedding: rowValues(splits[0], rows, r, toNumber) };
        break;
      case 'raw':
        results[r] = { outputs: Object.fromEntries(names.map((name, i) => [name, { shape: [...shapes[i]], data: rowValues(splits[i], rows, r, toJson) }])) };
        break;
    }
  }
  return results;
}
