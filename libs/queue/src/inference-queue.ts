import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, OnModuleInit } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from '@bales/model-registry';
import { INFER_JOB, INFER_QUEUE, InferJobData, JobRow, encodeRow } from './job-codec';
import { epochNow } from './clock';
import { InferOutcome, PendingRequests } from './pending-requests';
import { RedisConnections } from './redis-connections';

export interface InferSubmission {
  requestId: string;
  modelId: string;
  priority: number;
  row: EncodedRow;
  timeoutMs: number;
}

/** Requests waiting for the end of the current tick, to travel as one job. */
interface Group {
  modelId: string;
  priority: number;
  rows: JobRow[];
}

// Past this a Redis write counts as failed, so a client gets 503 instead of waiting on a dead link.
const ENQUEUE_TIMEOUT_MS = 1000;

/**
 * The producer: turns requests into prioritized BullMQ jobs and hands back a promise of each result.
 * Concurrent requests of one model and priority arriving in the same tick share one job, which
 * amortises BullMQ's per-job Redis cost (a few Lua scripts and stream writes) over the whole group.
 */
@Injectable()
export class InferenceQueue implements OnModuleInit {
  private groups = new Map<string, Group>();
  private flushScheduled = false;
  private client!: Redis;
  private draining = false;

  constructor(
    @InjectQueue(INFER_QUEUE) private readonly queue: Queue,
    private readonly config: BalesConfig,
    private readonly pending: PendingRequests,
    private readonly redis: RedisConnections,
  ) {}

  async onModuleInit(): Promise<void> {
    this.queue.on('error', (err) => this.redis.logError(err));
    this.client = (await this.queue.client) as unknown as Redis;
  }

  /** True while Redis answers; requests are refused at once otherwise. */
  get connected(): boolean {
    return this.client?.status === 'ready';
  }

  /** False once shutdown has begun: readiness turns false and new requests get 503. */
  get accepting(): boolean {
    return !this.draining;
  }

  /** Stops taking new requests; those already accepted are still answered. */
  beginShutdown(): void {
    this.draining = true;
  }

  /** Requests this replica accepted and has not answered yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Enqueues one request; resolves with its row, or rejects with TIMEOUT, QUEUE_UNAVAILABLE or the batch's error. */
  submit(req: InferSubmission): Promise<InferOutcome> {
    if (this.draining) {
      return Promise.reject(new BalesError(ErrorCode.SHUTTING_DOWN, 'this replica is shutting down; retry on another', req.requestId));
    }
    if (!this.connected) {
      return Promise.reject(new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the queue (Redis) is unreachable; retry shortly', req.requestId));
    }
    const now = epochNow();
    const result = this.pending.add(req.requestId, req.timeoutMs);
    const key = `${req.modelId}\u0000${req.priority}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { modelId: req.modelId, priority: req.priority, rows: [] };
      this.groups.set(key, group);
    }
    group.rows.push(encodeRow(req.requestId, now, now + req.timeoutMs, req.row));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return result;
  }

  private flush(): void {
    this.flushScheduled = false;
    const groups = [...this.groups.values()];
    this.groups = new Map();
    const max = this.config.MAX_BATCH_SIZE;
    const jobs = groups.flatMap((g) => {
      const chunks: { rows: JobRow[]; priority: number; data: InferJobData }[] = [];
      for (let i = 0; i < g.rows.length; i += max) {
        const rows = g.rows.slice(i, i + max);
        chunks.push({ rows, priority: g.priority, data: { m: g.modelId, o: this.redis.instanceId, r: rows } });
      }
      return chunks;
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('enqueue timed out')), ENQUEUE_TIMEOUT_MS).unref());
    Promise.race([this.queue.addBulk(jobs.map((j) => ({ name: INFER_JOB, data: j.data, opts: { priority: j.priority } }))), timeout]).catch((err: Error) => {
      this.redis.logError(err);
      for (const job of jobs) {
        for (const row of job.rows) {
          this.pending.fail(row[0], new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the queue (Redis) is unreachable; retry shortly', row[0]));
        }
      }
    });
  }
}
