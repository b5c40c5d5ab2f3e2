import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { BalesConfig } from '@bales/config';
import { PendingRequests, ResultMessage } from './pending-requests';
import { RedisConnections } from './redis-connections';

/**
 * Brings each result to the replica holding the client's connection: directly when that is this
 * replica, otherwise over the origin's own Redis channel. Results for a replica that is gone are
 * published to nobody and vanish; nothing accumulates.
 */
@Injectable()
export class ResultRouter implements OnModuleInit {
  private readonly logger = new Logger(ResultRouter.name);
  private publisher!: Redis;

  constructor(
    private readonly config: BalesConfig,
    private readonly redis: RedisConnections,
    private readonly pending: PendingRequests,
  ) {}

  get instanceId(): string {
    return this.redis.instanceId;
  }

  private channel(instanceId: string): string {
    return `${this.config.QUEUE_PREFIX}:results:${instanceId}`;
  }

  async onModuleInit(): Promise<void> {
    this.publisher = this.redis.open('publisher');
    // The subscriber queues its SUBSCRIBE until connected and re-subscribes by itself after an outage.
    const subscriber = this.redis.open('results', { enableOfflineQueue: true, maxRetriesPerRequest: null });
    subscriber.on('message', (_channel: string, message: string) => this.onMessage(message));
    await subscriber.subscribe(this.channel(this.instanceId));
  }

  /** Delivers one batch's results, one PUBLISH per remote origin. */
  deliver(results: { origin: string; message: ResultMessage }[]): void {
    const remote = new Map<string, ResultMessage[]>();
    for (const { origin, message } of results) {
      if (origin === this.instanceId) this.pending.settle(message);
      else {
        const list = remote.get(origin);
        if (list) list.push(message);
        else remote.set(origin, [message]);
      }
    }
    for (const [origin, messages] of remote) {
      this.publisher.publish(this.channel(origin), JSON.stringify(messages)).catch((err: Error) => this.redis.logError(err));
    }
  }

  /** Messages come from Redis, outside any validation: anything malformed is logged and dropped. */
  private onMessage(raw: string): void {
    let messages: unknown;
    try {
      messages = JSON.parse(raw);
    } catch {
      this.logger.warn('dropped a result message that is not JSON');
      return;
    }
    if (!Array.isArray(messages)) return;
    for (const m of messages) {
      if (m && typeof m === 'object' && typeof m.id === 'string' && typeof m.ok === 'boolean') this.pending.settle(m as ResultMessage);
    }
  }
}
