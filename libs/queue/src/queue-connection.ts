import { InjectQueue } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { INFER_QUEUE } from './job-codec';
import { RedisConnections, keepErrorSinks } from './redis-connections';

/**
 * The queue's own Redis connection (BullMQ's, opened for the producer): whether Redis answers, for the producer,
 * the consumer and the probes alike, and the connection the shared depth is read on.
 */
@Injectable()
export class QueueConnection implements OnModuleInit, BeforeApplicationShutdown {
  private redisClient?: Redis;

  constructor(
    @InjectQueue(INFER_QUEUE) private readonly queue: Queue,
    private readonly redis: RedisConnections,
  ) {}

  async onModuleInit(): Promise<void> {
    this.queue.on('error', (err) => this.redis.logError(err));
    keepErrorSinks(this.queue, (err) => this.redis.logError(err));
    this.redisClient = (await this.queue.client) as unknown as Redis;
  }

  beforeApplicationShutdown(): void {
    if (this.redisClient && !this.connected) {
      // Cut off from Redis, BullMQ's close() sends QUIT, gets "stream isn't writeable" and rethrows it, failing
      // app.close(). Ending the connection first (BullMQ sets the status by hand the same way, as ioredis leaves
      // it 'reconnecting') makes QUIT fail with "Connection is closed", which BullMQ ignores.
      this.redisClient.disconnect();
      this.redisClient.status = 'end';
    }
  }

  /** True while Redis answers; requests are refused at once otherwise. */
  get connected(): boolean {
    return this.redisClient?.status === 'ready';
  }

  /** The connection, once BullMQ has opened it. */
  get client(): Redis | undefined {
    return this.redisClient;
  }
}
