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

/**
 * One input of a batch: rows stacked along the input's batch axis, or one row's value for an input with none. Its
 * bytes sit at `offset` in the batch's shared memory.
 */
export interface Feed {
  name: string;
  type: ElementType;
  dims: number[];
  offset: number;
  byteLength: number;
}

/**
 * The shared memory a batch's inputs travel in, reused from batch to batch: `id` names it, `memory` comes only the
 * first time a worker sees it, `bytes` of it are in use, and `forget` lists memory the sender keeps no more.
 */
export interface FeedMemory {
  id: number;
  memory?: SharedArrayBuffer;
  bytes: number;
  forget?: number[];
}

export type ClassificationResult = { label: number; confidence: number; label_name?: string };
export type RowResult =
  | ClassificationResult
  | { values: number[] }
  | { embedding: number[] }
  | { outputs: Record<string, { shape: number[]; data: (number | string | boolean)[] }> };

/** One input of a warm-up sample, as config.json's `warmup` gives it: zeros or random values of a shape, or the values. */
export type WarmupInput = { shape: number[] } & ({ fill: 'zeros' | 'random' } | { values: (number | boolean)[] });

/** One warm-up run: a value for every input of the model. */
export interface WarmupSample {
  name?: string;
  inputs: Record<string, WarmupInput>;
}

/** config.json's `warmup`: its samples, false for none, or undefined for inputs the gateway makes up. */
export type WarmupSetting = WarmupSample[] | false | undefined;

/** How a session was warmed when it loaded. */
export interface WarmupReport {
  /** config: the samples config.json gives; synthetic: inputs the gateway made up; off: `"warmup": false`. */
  source: 'config' | 'synthetic' | 'off';
  /** Why no synthetic input fitted the model, which is then served unwarmed. */
  warning?: string;
}

/**
 * Why a session did not load: ONNX Runtime cannot parse the file, does not implement an operator or opset in it,
 * or rejects the graph otherwise; an input has an element type BALES does not take; or a config.json warm-up
 * sample failed.
 */
export type LoadFailureKind = 'unreadable' | 'unsupported' | 'invalid' | 'input_type' | 'warmup';

/** A failed load, as the worker reports it: the kind, ONNX Runtime's own words, and the signature once it was read. */
export class LoadFailure extends Error {
  override name = 'LoadFailure';

  constructor(
    readonly kind: LoadFailureKind,
    message: string,
    readonly signature?: Signature,
  ) {
    super(message);
  }
}

export type WorkerRequest =
  | { op: 'load'; id: number; key: string; path: string; intraOpThreads: number; warmup: WarmupSetting; batchAxes?: unknown }
  | { op: 'unload'; id: number; key: string }
  | { op: 'run'; id: number; key: string; task: Task; labels?: string[]; rows: number; feeds: Feed[]; memory: FeedMemory; axes: Record<string, number | null>; rawRows?: boolean[] };

export interface RunReply {
  results: RowResult[];
  /** Wall-clock epoch milliseconds when the session started this batch. */
  startedAt: number;
  inferenceMs: number;
}

export type WorkerReply =
  | { id: number; ok: true; signature?: Signature; warmup?: WarmupReport; run?: RunReply }
  | { id: number; ok: false; error: string; kind?: LoadFailureKind; signature?: Signature };
