import type { EncodedRow } from './input-encoder';
import type { RowResult, Signature, Task, WarmupReport } from './protocol';

/**
 * Where a model is in its life: LOADING until its first version is up in every worker thread (hidden from
 * clients while a new id first loads), READY while it takes requests, FAILED with the reason it did not load (kept,
 * so it can be fixed and loaded again, while the others serve), DRAINING after DELETE (no new requests, accepted ones
 * still finish). A hot swap loads the next version beside a READY one, so the model stays READY.
 */
export const ModelState = { LOADING: 'loading', READY: 'ready', FAILED: 'failed', DRAINING: 'draining' } as const;
export type ModelState = (typeof ModelState)[keyof typeof ModelState];

export interface ModelInfo {
  id: string;
  version: string;
  task: Task;
  labels?: string[];
  signature: Signature;
  /** Rows per batch: MAX_BATCH_SIZE, the model's own max_batch_size, or 1 when it has no batch axes. */
  maxBatchSize: number;
  /** Each input's and output's batch axis by name; null: none (fed once per batch, or whole). */
  batchAxes: Record<string, number | null>;
  /** Why the model runs one request per run, when its batch axes cannot be determined. */
  unbatchedReason?: string;
  state: ModelState;
  /** Why a failed model did not load. */
  reason?: string;
  /** How the current version was warmed; absent until it has loaded. */
  warmup?: WarmupReport;
  /** When the current version loaded; absent while the model is failed or loading. */
  loadedAt?: string;
  requestsServed: number;
  /** Requests this replica accepted for the model and has not answered yet. */
  requestsPending: number;
}

export interface RegisterRequest {
  id: string;
  weightsPath: string;
  task: Task;
  labels?: string[];
  maxBatchSize?: number;
}

/** One replica's part of a fleet call: a version to load beside the served one, or a new model to load hidden. */
export interface PrepareRequest {
  id: string;
  version: number;
  /** Inside MODELS_DIR; undefined: the model's own file (a failed model loaded again, or a folder model). */
  weightsPath?: string;
  /** Where a new id comes from: its MODELS_DIR folder (config.json and model.onnx), or a registration. */
  origin: 'folder' | 'api';
  task?: Task;
  labels?: string[];
  maxBatchSize?: number;
  allowSignatureChange?: boolean;
}

export interface BatchOutcome {
  version: string;
  results: RowResult[];
  startedAt: number;
  inferenceMs: number;
}

export interface ReloadOutcome {
  modelId: string;
  oldVersion: string;
  newVersion: string;
  loadMs: number;
}

export interface UnloadOutcome {
  modelId: string;
  version: string;
  /** Requests this replica had accepted for the model when it stopped taking new ones; all were answered. */
  drainedRequests: number;
  drainMs: number;
}

/** A request admitted for a model: its encoded row, and release() once it has been answered. */
export interface Admission {
  model: ModelInfo;
  row: EncodedRow;
  release: () => void;
}

/** A tensor-form request (Open Inference Protocol) admitted as one row per batch entry. */
export interface TensorAdmission {
  model: ModelInfo;
  rows: EncodedRow[];
  release: () => void;
}
