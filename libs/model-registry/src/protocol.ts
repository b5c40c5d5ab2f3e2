/** Messages between the WorkerPool (event-loop thread) and its session workers. */

export const TASKS = ['classification', 'regression', 'embedding', 'raw'] as const;
export type Task = (typeof TASKS)[number];

/** The ONNX Runtime element types BALES accepts, each with the typed array holding its data (bool: one byte a value). */
export const TYPED_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
} as const;
export type ElementType = keyof typeof TYPED_ARRAYS;

/** One input or output of a model, as the ONNX file declares it. A string dimension is dynamic. */
export interface TensorSpec {
  name: string;
  type: string;
  shape: (number | string)[];
}

export interface Signature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** One input of a batch: rows stacked along the first dimension. */
export interface Feed {
  name: string;
  type: ElementType;
  dims: number[];
  data: ArrayBuffer;
}

export type ClassificationResult = { label: number; confidence: number; label_name?: string };
export type RowResult =
  | ClassificationResult
  | { values: number[] }
  | { embedding: number[] }
  | { outputs: Record<string, { shape: number[]; data: (number | string | boolean)[] }> };

export type WorkerRequest =
  | { op: 'load'; id: number; key: string; path: string; intraOpThreads: number }
  | { op: 'unload'; id: number; key: string }
  | { op: 'run'; id: number; key: string; task: Task; labels?: string[]; rows: number; feeds: Feed[]; rawRows?: boolean[] };

export interface RunReply {
  results: RowResult[];
  /** Wall-clock epoch milliseconds when the session started this batch. */
  startedAt: number;
  inferenceMs: number;
}

export type WorkerReply =
  | { id: number; ok: true; signature?: Signature; run?: RunReply }
  | { id: number; ok: false; error: string };
