import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import { BalesConfig } from '@bales/config';
import { versionQueue } from './job-codec';
import { QueueConnection } from './queue-connection';
import { INFER_QUEUE_SETTINGS } from './queue-settings';
import { RedisConnections, keepErrorSinks } from './redis-connections';

/** The job states that still need a processor: queued, or held by one. */
const UNFINISHED = ['wait', 'prioritized', 'active', 'delayed', 'paused'] as const;

async function unfinishedIn(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts(...UNFINISHED);
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * The producer's handle on each model version's queue. They all share the producer's one connection, so a
 * model version costs no Redis connection on the producer side, and they fail fast together while Redis is away.
 */
@Injectable()
export class ModelQueues implements OnApplicationShutdown {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly config: BalesConfig,
    private readonly connection: QueueConnection,
    private readonly redis: RedisConnections,
  ) {}

  /** The queue of a model version, opened on first use. */
  get(modelId: string, version: string): Queue {
    const name = versionQueue(modelId, version);
    let queue = this.queues.get(name);
    if (!queue) {
      const client = this.connection.client;
      if (!client) throw new Error('the queue connection is not open yet');
      queue = new Queue(name, { connection: client, prefix: this.config.QUEUE_PREFIX, ...INFER_QUEUE_SETTINGS });
      queue.on('error', (err) => this.redis.logError(err));
      keepErrorSinks(queue, (err) => this.redis.logError(err));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Jobs of a model version still queued or held anywhere in the fleet. */
  async unfinished(modelId: string, version: string): Promise<number> {
    return unfinishedIn(this.get(modelId, version));
  }

  /**
   * Removes a drained version's queue from Redis (its meta, id counter, events and failed jobs), so reloads leave no
   * keys behind, and forgets it; the shared connection stays open. BullMQ refuses while a job is still active
   * anywhere: then the keys stay, as small as they are.
   */
  async forget(modelId: string, version: string): Promise<void> {
    const name = versionQueue(modelId, version);
    const queue = this.get(modelId, version);
    this.queues.delete(name);
    // obliterate() pauses the queue before it may refuse (a job still active): resumed then, or nobody fetches it.
    if ((await unfinishedIn(queue).catch(() => 1)) === 0) await queue.obliterate().catch(() => queue.resume().catch(() => undefined));
    await queue.close().catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    // The connection is shared: closing these queues leaves it to its owner.
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
