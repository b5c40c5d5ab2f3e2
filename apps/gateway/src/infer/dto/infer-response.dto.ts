import type { RowResult } from '@bales/model-registry';

/** One request's own row of its batch. */
export class InferResponseDto {
  request_id: string;
  model_id: string;
  model_version: string;
  /** classification: {label, confidence, label_name?} */
  result: RowResult;
  /** End to end inside the gateway, from the request's arrival to its answer. */
  latency_ms: number;
  /** Rows in the batch that carried this request. */
  batch_size: number;
  /** Time from enqueueing until its batch started. */
  queued_ms: number;
}
