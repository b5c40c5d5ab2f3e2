export { QueueModule } from './queue.module';
export { InferenceQueue } from './inference-queue';
export type { InferSubmission } from './inference-queue';
export { PendingRequests } from './pending-requests';
export type { InferOutcome } from './pending-requests';
export { QueueConnection } from './queue-connection';
export { RedisConnections } from './redis-connections';
export { QueueConsumer } from './queue-consumer';
export { QueueDepth } from './queue-depth';
export { DynamicBatcher } from './dynamic-batcher';
export type { BatcherOptions } from './dynamic-batcher';
export { BatchRunner } from './batch-runner';
export type { RunnerStats } from './batch-runner';
// The queue's building blocks, for its benchmark (scripts/bench/queue.ts): the consumer's fetch loop, the job
// format and the settings the gateway runs the queue with.
export { BatchingWorker } from './batching-worker';
export { INFER_JOB, INFER_QUEUE, INLINE_ROW_BYTES, attachRowBytes, decodeJob, encodeJob, encodeRow, versionQueue, writeRowBytes } from './job-codec';
export { INFER_QUEUE_SETTINGS, INFER_WORKER_SETTINGS } from './queue-settings';
