import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { BalesConfig, redisOptionsFromUrl } from '@bales/config';
import { ModelRegistryModule } from '@bales/model-registry';
import { AbandonedJobs } from './abandoned-jobs';
import { BatchRunner } from './batch-runner';
import { DirectDispatch } from './direct-dispatch';
import { QueueConsumer } from './queue-consumer';
import { InferenceQueue } from './inference-queue';
import { INFER_QUEUE } from './job-codec';
import { ModelQueues } from './model-queues';
import { PendingRequests } from './pending-requests';
import { QueueConnection } from './queue-connection';
import { QueueDepth } from './queue-depth';
import { INFER_QUEUE_SETTINGS } from './queue-settings';
import { RedisConnections } from './redis-connections';
import { ResultRouter } from './result-router';

@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [BalesConfig],
      useFactory: (config: BalesConfig) => ({
        // The producer's connection fails fast while Redis is away: a client gets 503 at once, and no
        // command piles up in memory to run after the client was already answered.
        connection: { ...redisOptionsFromUrl(config.REDIS_URL), enableOfflineQueue: false },
        prefix: config.QUEUE_PREFIX,
      }),
    }),
    BullModule.registerQueue({
      name: INFER_QUEUE,
      ...INFER_QUEUE_SETTINGS,
    }),
    ModelRegistryModule,
  ],
  providers: [RedisConnections, QueueConnection, ModelQueues, QueueDepth, PendingRequests, DirectDispatch, ResultRouter, AbandonedJobs, InferenceQueue, BatchRunner, QueueConsumer],
  exports: [InferenceQueue, QueueConsumer, QueueConnection, RedisConnections, QueueDepth, PendingRequests, BatchRunner, ModelRegistryModule],
})
export class QueueModule {}
