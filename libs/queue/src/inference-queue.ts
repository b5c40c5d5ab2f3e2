import { Injectable } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from '@bales/model-registry';
import { EncodedJob, INFER_JOB, INFER_QUEUE, OutgoingRow, RowBytes, encodeJob, versionQueue, writeRowBytes } from './job-codec';
import { ModelQueues } from './model-queues';
import { RowCounts } from './row-counts';
import { AbandonedJobs, WatchedJob } from './abandoned-jobs';
import { DirectDispatch } from './direct-dispatch';
import { epochNow } from './clock';
import { InferOutcome, PendingRequests } from './pending-requests';
import { QueueConnection } from './queue-connection';
import { QueueDepth } from './queue-depth';
import { RedisConnections } from './redis-connections';
import { ResultRouter } from './result-router';

export interface InferSubmission {
  requestId: string;
  modelId: string;
  /** The model version the request was admitted under: its job goes to that version's queue. */
  version: string;
  priority: number;
  row: EncodedRow;
  timeoutMs: number;
  /**
   * Registers a callback for when the client has gone: the request is then settled and its queued work dropped.
   * A plain callback rather than an AbortSignal, which costs an EventTarget per request on the hot path.
   */
  onClientGone?: (listener: () => void) => void;
  /**
   * False for a row of a request with several (a V2 tensor of N): they travel together in one job and one batch,
   * rather than the first few each running alone by direct dispatch.
   */
  direct?: boolean;
}

/** Requests waiting for the end of the current tick, to travel as one job. */
interface Group {
  modelId: string;
  version: string;
  priority: number;
  rows: OutgoingRow[];
}

/** A job about to be written: its rows, its payload, and its requests followed until each is settled. */
interface OutgoingJob {
  watched: WatchedJob;
  version: string;
  rows: OutgoingRow[];
  encoded: EncodedJob;
}

// Past this a Redis write counts as failed, so a client gets 503 instead of waiting on a dead link.
const ENQUEUE_TIMEOUT_MS = 1000;

/**
 * The producer: turns requests into prioritized BullMQ jobs and hands back a promise of each result.
 * Concurrent requests of one model and priority arriving in the same tick share one job, which
 * amortises BullMQ's per-job Redis cost (a few Lua scripts and stream writes) over the whole group.
 */
@Injectable()
export class InferenceQueue {
  private groups = new Map<string, Group>();
  private flushScheduled = false;
  private writing = false;
  private bytesKeys = 0;
  /** Rows accepted and not yet written (or given up), per model version's queue: what writesSettled() waits on. */
  private readonly unwritten = new RowCounts();

  constructor(
    private readonly queues: ModelQueues,
    private readonly config: BalesConfig,
    private readonly pending: PendingRequests,
    private readonly redis: RedisConnections,
    private readonly router: ResultRouter,
    private readonly connection: QueueConnection,
    private readonly depth: QueueDepth,
    private readonly abandoned: AbandonedJobs,
    private readonly direct: DirectDispatch,
  ) {
    // Rows accepted in this tick are written before each depth read, so the read includes every row counted before it.
    depth.beforeEachRead(() => {
      if (this.flushScheduled) this.flush();
    });
  }

  /**
   * Enqueues one request; resolves with its row, or rejects with QUEUE_FULL, SHUTTING_DOWN,
   * QUEUE_UNAVAILABLE, TIMEOUT or the batch's error.
   */
  submit(req: InferSubmission): Promise<InferOutcome> {
    if (!this.pending.accepting) {
      return Promise.reject(new BalesError(ErrorCode.SHUTTING_DOWN, 'this replica is shutting down; retry on another'));
    }
    if (!this.connection.connected) {
      return Promise.reject(new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the queue (Redis) is unreachable; retry shortly'));
    }
    const limit = this.config.MAX_QUEUE_DEPTH;
    if (this.depth.total(req.modelId) >= limit) {
      return Promise.reject(new BalesError(ErrorCode.QUEUE_FULL, `model '${req.modelId}' has ${limit} or more requests queued; retry shortly`));
    }
    this.depth.addAccepted(req.modelId);
    const now = epochNow();
    const result = this.pending.add(req.requestId, req.timeoutMs);
    // Other replicas hear of a client gone only for a row that went to Redis: a direct one never reaches them.
    let queued = true;
    req.onClientGone?.(() => {
      if (this.pending.fail(req.requestId, new BalesError(ErrorCode.CLIENT_CLOSED, 'the client closed the connection')) && queued) {
        this.router.cancel(req.requestId, now + req.timeoutMs);
      }
    });
    const deadline = now + req.timeoutMs;
    // Rows gathered or being written this tick may be more urgent: they go first, through the queue.
    const mayRunDirectly = req.direct !== false && !this.flushScheduled && !this.writing;
    if (mayRunDirectly && this.direct.tryTake({ requestId: req.requestId, modelId: req.modelId, version: req.version, origin: this.router.instanceId, priority: req.priority, enqueuedAt: now, deadline, fetchedAt: now, row: req.row })) {
      this.depth.addWritten(req.modelId, req.priority, [deadline]);
      queued = false;
      return result;
    }
    this.countUnwritten(req.modelId, req.version, 1);
    const key = `${req.modelId}\u0000${req.version}\u0000${req.priority}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { modelId: req.modelId, version: req.version, priority: req.priority, rows: [] };
      this.groups.set(key, group);
    }
    group.rows.push({ requestId: req.requestId, enqueuedAt: now, deadline, row: req.row });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // While a write is in flight, requests gather for the next one instead (see flush).
      if (!this.writing) setImmediate(() => this.flushScheduled && !this.writing && this.flush());
    }
    return result;
  }

  /**
   * Writes the requests gathered so far. One write is in flight at a time: requests arriving meanwhile share the
   * next one, so under load jobs carry more rows (fewer BullMQ scripts per request, for the producer, Redis and
   * every processor) while an idle gateway still writes each request in the tick it arrives.
   */
  private flush(): void {
    this.flushScheduled = false;
    const groups = [...this.groups.values()];
    this.groups = new Map();
    const max = this.config.MAX_BATCH_SIZE;
    const live: OutgoingJob[] = [];
    const now = epochNow();
    const newKey = () => `${this.config.QUEUE_PREFIX}:${INFER_QUEUE}:rows:${this.redis.instanceId}:${this.bytesKeys++}`;
    for (const g of groups) {
      for (let i = 0; i < g.rows.length; i += max) {
        const rows = g.rows.slice(i, i + max);
        // Requests settled (timed out, client gone) before their job was written are not written at all.
        if (!rows.some((r) => this.pending.has(r.requestId))) {
          this.countUnwritten(g.modelId, g.version, -rows.length);
          continue;
        }
        const encoded = encodeJob(g.modelId, g.version, this.redis.instanceId, rows, newKey, now);
        live.push({ watched: this.abandoned.watch(this.queues.get(g.modelId, g.version), g.modelId, g.priority, rows, encoded.data.b), version: g.version, rows, encoded });
      }
    }
    if (live.length === 0) return;
    this.writing = true;
    Promise.allSettled(live.map((job) => this.write(job))).finally(() => {
      // The requests gathered during this write go in the next one.
      this.writing = false;
      if (this.flushScheduled) this.flush();
    });
  }

  /**
   * Writes one job, counting its rows into the shared depth (reported with the next read). Each job is added on
   * its own with `Queue.add`, never `addBulk`: the ioredis pipeline `addBulk` builds copies every BullMQ Lua script
   * onto itself per write (docs/benchmarks.md), and jobs share nothing that needs them written together. A job
   * that cannot be written fails its own requests only. Row bytes kept apart are set just before, on the same
   * connection, so any replica that takes the job finds them.
   */
  private async write(job: OutgoingJob): Promise<void> {
    const { watched, encoded } = job;
    this.depth.addWritten(watched.modelId, watched.priority, watched.deadlines);
    if (encoded.bytes) this.writeBytes(encoded.bytes, Math.max(...watched.deadlines));
    const written = watched.queue.add(INFER_JOB, encoded.data, { priority: watched.priority });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('enqueue timed out')), ENQUEUE_TIMEOUT_MS).unref()));
    try {
      const added = await Promise.race([written, timeout]);
      this.abandoned.written(watched, added.id);
    } catch (err) {
      this.redis.logError(err as Error);
      this.depth.removeUnrun(watched.modelId, watched.priority, watched.deadlines);
      if (encoded.bytes) {
        this.direct.rowBytes.drop(encoded.bytes.key);
        this.connection.client?.del(encoded.bytes.key).catch(() => undefined);
      }
      for (const row of job.rows) {
        this.pending.fail(row.requestId, new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the queue (Redis) is unreachable; retry shortly'));
      }
    } finally {
      clearTimeout(timer);
      this.countUnwritten(watched.modelId, job.version, -job.rows.length);
    }
  }

  /**
   * Resolves once no request accepted for a model version waits to be written: after a commit, every job of the
   * version served before is in Redis, where the drain of that version can see it. Rows of other versions, which
   * may keep the producer busy under load, do not hold it.
   */
  async writesSettled(modelId: string, version: string): Promise<void> {
    const key = versionQueue(modelId, version);
    while (this.unwritten.has(key)) await new Promise((r) => setTimeout(r, 1));
  }

  private countUnwritten(modelId: string, version: string, rows: number): void {
    this.unwritten.add(versionQueue(modelId, version), rows);
  }

  /**
   * Stores a job's row bytes with a TTL past its rows' deadlines, so a job lost on the way leaks nothing for long.
   * A failure is only logged: the job's consumer then answers its rows with the missing bytes' error.
   */
  private writeBytes(bytes: RowBytes, until: number): void {
    const client = this.connection.client;
    if (!client) return;
    for (const written of writeRowBytes(client, bytes)) written.catch((err: Error) => this.redis.logError(err));
    this.direct.rowBytes.keep(bytes.key, bytes.parts, until, epochNow());
  }
}
