export { QueueModule } from './queue.module';
export { InferenceQueue } from './inference-queue';
export type { InferSubmission } from './inference-queue';
export type { InferOutcome } from './pending-requests';
export { DynamicBatcher } from './batcher';
export type { BatcherOptions } from './batcher';
export { BatchRunner } from './batch-runner';
export type { RunnerStats } from './batch-runner';
// The queue's building blocks, for its benchmark (scripts/bench/queue.ts): the consumer's fetch loop and the job format.
export { BatchingWorker } from './batching-worker';
export { decodeJob, encodeRow } from './job-codec';
