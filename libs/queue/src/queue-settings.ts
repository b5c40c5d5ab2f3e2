import type { QueueOptions, WorkerOptions } from 'bullmq';

/** The infer queue's settings, as every producer registers it (queue.module.ts) and the queue benchmark uses them. */
export const INFER_QUEUE_SETTINGS = {
  // Nothing reads job events (results travel over per-replica channels), so keep the stream short.
  streams: { events: { maxLen: 100 } },
  defaultJobOptions: { removeOnComplete: true, removeOnFail: 100, attempts: 1 },
} satisfies Partial<QueueOptions>;

/** The consumer's lock settings, as every consumer runs them (queue-consumer.ts) and the queue benchmark uses them. */
export const INFER_WORKER_SETTINGS = {
  // A replica that dies holding jobs stops renewing their locks; another replica's stalled check puts them
  // back within lockDuration + stalledInterval (about 4 s) instead of BullMQ's 30 s + 30 s. The price is one
  // lock-renewal script per worker every 1.5 s (it covers all jobs in hand) and one stalled check per second.
  lockDuration: 3000,
  stalledInterval: 1000,
} satisfies Partial<WorkerOptions>;
