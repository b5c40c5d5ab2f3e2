import type { EncodedRow } from './input-encoder';
import type { RowResult, Signature, Task } from './protocol';

/**
 * Where a model is in its life: LOADING until its first version is up in every worker thread (hidden from
 * clients meanwhile), READY while it takes requests, DRAINING after DELETE (no new requests, accepted ones still
 * finish). FAILED is for a model kept with the reason it could not load; today such a model is not kept, and at
 * boot it stops the gateway. A hot swap loads the next version beside a READY one, so the model stays READY.
 */
export const ModelState = { LOADING: 'loading', READY: 'ready', FAILED: 'failed', DRAINING: 'draining' } as const;
export type ModelState = (typeof ModelState)[keyof typeof ModelState];

export interface ModelInfo {
  id: string;
  version: string;
  task: Task;
  labels?: string[];
  signature: Signature;
  /** Rows per batch: MAX_BATCH_SIZE, the model's own max_batch_size, or 1 when its batch dimension is fixed. */
  maxBatchSize: number;
  state: ModelState;
  loadedAt: string;
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
