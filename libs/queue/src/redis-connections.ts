import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import IORedis, { Redis, RedisOptions } from 'ioredis';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { BalesConfig, redisOptionsFromUrl } from '@bales/config';

/**
 * The Redis connections BALES opens itself (BullMQ opens its own for the queue and worker),
 * and this replica's identity on them.
 */
@Injectable()
export class RedisConnections implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  /** Names this replica in job payloads, so results find their way back to it. */
  readonly instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly options: RedisOptions;
  private readonly opened: Redis[] = [];
  private lastError = '';

  constructor(config: BalesConfig) {
    this.options = redisOptionsFromUrl(config.REDIS_URL);
  }

  /** A new connection that fails commands at once while Redis is away, instead of queueing them. */
  open(name: string, extra: RedisOptions = {}): Redis {
    const conn = new IORedis({ ...this.options, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: `bales:${name}`, ...extra });
    conn.on('error', (err: Error) => this.logError(err));
    this.opened.push(conn);
    return conn;
  }

  /** Logs a Redis error once until a different one occurs, so an outage does not flood the log. */
  logError(err: Error): void {
    if (err.message === this.lastError) return;
    this.lastError = err.message;
    this.logger.error(`Redis: ${err.message}`);
  }

  async onApplicationShutdown(): Promise<void> {
    // QUIT waits for a reply that never comes while Redis is away; then the socket is just dropped.
    await Promise.all(this.opened.map((c) => (c.status === 'ready' ? c.quit().catch(() => c.disconnect()) : c.disconnect())));
  }
}

/**
 * BullMQ's RedisConnection drops all its listeners when closed, yet emits 'error' afterwards if it was still
 * connecting ("Connection is closed."): with no listener that throws inside a promise callback, an unhandled
 * rejection that kills the process, typically while shutting down during a Redis outage. This keeps one
 * error sink that survives removeAllListeners() on the BullMQ object's own connections.
 */
export function keepErrorSinks(bullmqObject: object, log: (err: Error) => void): void {
  const internals = bullmqObject as { connection?: EventEmitter; blockingConnection?: EventEmitter };
  for (const emitter of [internals.connection, internals.blockingConnection]) {
    if (!emitter) continue;
    const sink = (err: Error) => log(err);
    emitter.on('error', sink);
    const removeAll = emitter.removeAllListeners.bind(emitter);
    emitter.removeAllListeners = ((event?: string | symbol) => {
      // removeAllListeners(undefined) would remove only an `undefined` event's listeners: pass no argument.
      if (event === undefined) removeAll();
      else removeAll(event);
      if (event === undefined || event === 'error') emitter.on('error', sink);
      return emitter;
    }) as EventEmitter['removeAllListeners'];
  }
}
