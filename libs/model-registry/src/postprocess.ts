import type { RowResult, Task } from './protocol';

/** The part of an ONNX Runtime output tensor post-processing needs. */
export interface OutputTensor {
  dims: readonly number[];
  data: ArrayLike<number | bigint | string | boolean>;
}

const toNumber = (v: number | bigint | string | boolean): number => (typeof v === 'number' ? v : Number(v));

function rowSlice(tensor: OutputTensor, row: number): number[] {
  const width = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
  const out = new Array<number>(width);
  for (let i = 0; i < width; i++) out[i] = toNumber(tensor.data[row * width + i]);
  return out;
}

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
 * Turns a batch's output tensors into one result per row, by task. Rows marked in rawRows (requests of
 * the Open Inference Protocol) get every output tensor instead, whatever the model's task.
 */
export function postprocess(task: Task, rows: number, outputs: Record<string, OutputTensor>, labels?: string[], rawRows?: boolean[]): RowResult[] {
  const names = Object.keys(outputs);
  const first = outputs[names[0]];
  const results = new Array<RowResult>(rows);
  for (let r = 0; r < rows; r++) {
    switch (rawRows?.[r] ? 'raw' : task) {
      case 'classification':
        results[r] = classify(rowSlice(first, r), labels);
        break;
      case 'regression':
        results[r] = { values: rowSlice(first, r) };
        break;
      case 'embedding':
        results[r] = { embedding: rowSlice(first, r) };
        break;
      case 'raw':
        results[r] = {
          outputs: Object.fromEntries(
            names.map((name) => {
              const t = outputs[name];
              const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
              const data = Array.from({ length: width }, (_, i) => {
                const v = t.data[r * width + i];
                return typeof v === 'bigint' ? Number(v) : v;
              });
              return [name, { shape: [...t.dims.slice(1)], data }];
            }),
          ),
        };
        break;
    }
  }
  return results;
}
