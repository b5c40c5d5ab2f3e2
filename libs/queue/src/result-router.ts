import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { BalesConfig } from '@bales/config';
import { epochNow } from './clock';
import { PendingRequests, ResultMessage } from './pending-requests';
import { RedisConnections } from './redis-connections';

/**
 * Brings each result to the replica holding the client's connection: directly when that is this
 * replica, otherwise over the origin's own Redis channel. Results for a replica that is gone are
 * published to nobody and vanish; nothing accumulates. It also carries cancellations the other way.
 */
@Injectable()
export class ResultRouter implements OnModuleInit {
  private readonly logger = new Logger(ResultRouter.name);
  private publisher!: Redis;
  /** Requests whose client left, announced by any replica: request_id -> deadline, after which it is moot. */
  private readonly cancelled = new Map<string, number>();
  private cancelling: [string, number][] = [];

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

  private get cancelChannel(): string {
    return `${this.config.QUEUE_PREFIX}:cancelled`;
  }

  async onModuleInit(): Promise<void> {
    this.publisher = this.redis.open('publisher');
    // The subscriber queues its SUBSCRIBE until connected, and subscribes again on every reconnection. Not by
    // ioredis's autoResubscribe, which drops that SUBSCRIBE's promise: closed during a reconnection, the connection
    // rejects it with "Connection is closed.", an unhandled rejection that kills the process.
    const subscriber = this.redis.open('results', { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false });
    const subscribe = () => subscriber.subscribe(this.channel(this.instanceId), this.cancelChannel);
    subscriber.on('message', (channel: string, message: string) => (channel === this.cancelChannel ? this.onCancelled(message) : this.onMessage(message)));
    await subscribe();
    // Every later connection: the first one's 'ready' was emitted before Redis answered the SUBSCRIBE above.
    subscriber.on('ready', () => void subscribe().catch((err: Error) => this.redis.logError(err)));
  }

  /**
   * Tells every replica that nobody waits for this request any more, so one that already fetched its row skips
   * it. Announcements of one tick travel in one PUBLISH; only clients that leave early cost anything.
   */
  cancel(requestId: string, deadline: number): void {
    if (this.cancelling.length === 0) {
      setImmediate(() => {
        const batch = this.cancelling;
        this.cancelling = [];
        this.publisher.publish(this.cancelChannel, JSON.stringify(batch)).catch((err: Error) => this.redis.logError(err));
      });
    }
    this.cancelling.push([requestId, deadline]);
  }

  isCancelled(requestId: string): boolean {
    return this.cancelled.has(requestId);
  }

  private onCancelled(raw: string): void {
    let entries: unknown;
    try {
      entries = JSON.parse(raw);
    } catch {
      return;
    }
    if (!Array.isArray(entries)) return;
    const now = epochNow();
    // Entries past their deadline are moot (the deadline check covers them), so the map holds one window at most.
    for (const [id, deadline] of this.cancelled) if (deadline <= now) this.cancelled.delete(id);
    for (const e of entries) {
      if (Array.isArray(e) && typeof e[0] === 'string' && Number.isFinite(e[1]) && e[1] > now) this.cancelled.set(e[0], e[1]);
    }
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
