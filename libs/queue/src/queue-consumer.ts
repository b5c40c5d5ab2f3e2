import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelInfo, ModelRegistry, ModelState, batchKey } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { BatchRunner } from './batch-runner';
import { BatchingWorker } from './batching-worker';
import { DirectDispatch } from './direct-dispatch';
import { DynamicBatcher } from './dynamic-batcher';
import { DecodedJob, INFER_QUEUE, QueuedRow, attachRowBytes, decodeJob } from './job-codec';
import { QueueConnection } from './queue-connection';
import { QueueDepth } from './queue-depth';
import { INFER_WORKER_SETTINGS } from './queue-settings';
import { RedisConnections, keepErrorSinks } from './redis-connections';

type BatchItem = QueuedRow & { done: () => void };

/** Rows batch with rows of the same model and item shape only, and equal values of inputs with no batch axis. */
const laneKey = (row: QueuedRow, model: ModelInfo) => `${row.modelId}|${batchKey(model, row.row)}`;

const READY_WAIT_MS = 2000;

/** Where the consumer reads and deletes jobs' row bytes: the worker's own connection. */
export interface RowBytesStore {
  getBuffer(key: string): Promise<Buffer | null>;
  del(key: string): Promise<number>;
}

/**
 * The consumer: takes jobs from the queue, checks them, and feeds their rows to the dynamic batcher,
 * whose batches the runner executes. A job completes once every one of its rows has been answered.
 */
@Injectable()
export class QueueConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(QueueConsumer.name);
  readonly batcher: DynamicBatcher<BatchItem>;
  private worker?: BatchingWorker;
  private largestRecentJobRows: number;
  /** Set once the worker is built; jobs whose rows' bytes are apart need it. */
  rowBytes?: RowBytesStore;

  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly runner: BatchRunner,
    private readonly redis: RedisConnections,
    private readonly connection: QueueConnection,
    private readonly depth: QueueDepth,
    private readonly direct: DirectDispatch,
    private readonly metrics: BalesMetrics,
  ) {
    this.largestRecentJobRows = config.MAX_BATCH_SIZE;
    this.batcher = new DynamicBatcher<BatchItem>({
      windowMs: config.BATCH_WINDOW_MS,
      slots: registry.slots,
      run: (_key, items) => this.runBatch(items),
    });
  }

  onApplicationBootstrap(): void {
    if (!this.config.PROCESSOR_ENABLED) {
      this.logger.log('PROCESSOR_ENABLED=false: this replica only enqueues; other replicas run its work');
      return;
    }
    this.worker = new BatchingWorker(
      INFER_QUEUE,
      (job) => this.process(job),
      {
        connection: { ...this.redis.options, maxRetriesPerRequest: null },
        prefix: this.config.QUEUE_PREFIX,
        ...INFER_WORKER_SETTINGS,
      },
      () => this.jobsWanted(),
    );
    const worker = this.worker;
    // BullMQ types its connection narrowly; it is an ioredis client.
    const client = async () => (await worker.client) as unknown as Redis;
    this.rowBytes = { getBuffer: async (key) => (await client()).getBuffer(key), del: async (key) => (await client()).del(key) };
    this.worker.on('error', (err) => this.redis.logError(err));
    keepErrorSinks(this.worker, (err) => this.redis.logError(err));
    this.worker.on('stalled', (jobId) => this.logger.warn(`job ${jobId} was held by a replica that stopped renewing its lock; running it again`));
    this.worker.run().catch((err: Error) => this.redis.logError(err));
    if (this.config.DIRECT_DISPATCH) this.direct.offer((row) => this.takeDirect(row));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.direct.offer(undefined);
    if (!this.worker) return;
    // A BullMQ connection closed while still connecting emits 'error' after its listeners are gone, an
    // uncaught "Connection is closed." that kills the process; a young worker may finish connecting first.
    if (this.connection.connected) {
      await Promise.race([this.worker.waitUntilReady().catch(() => undefined), new Promise((r) => setTimeout(r, READY_WAIT_MS).unref())]);
    }
    // Jobs in hand are finished (their clients answered) unless Redis is gone, when they could never be completed.
    const closed = this.worker.close(!this.connection.connected).then(() => true);
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.config.SHUTDOWN_TIMEOUT_S * 1000).unref());
    if (!(await Promise.race([closed, timeout]))) await this.worker.disconnect();
  }

  /**
   * How many fetches may be out now (the worker counts those already sent against it). Rows in hand are bounded:
   * while fewer than one full batch per worker thread waits here, as many jobs as refill it, counting each job as
   * big as the biggest seen lately; past that, none. A more urgent job in Redis is then fetched as soon as the
   * next batch leaves, rather than after the jobs in hand complete, while a burst of small jobs still arrives
   * together and fills shared batches.
   */
  private jobsWanted(): number {
    const missing = this.registry.slots * this.config.MAX_BATCH_SIZE - this.batcher.waiting;
    return missing > 0 ? Math.ceil(missing / this.largestRecentJobRows) : 0;
  }

  /** Rises at once to a bigger job, decays by a tenth per job: over-fetching needs jobs bigger than any lately. */
  private noteJobSize(rows: number): void {
    this.largestRecentJobRows = Math.max(rows, 1, this.largestRecentJobRows * 0.9);
  }

  async process(job: Job): Promise<void> {
    let decoded: DecodedJob;
    try {
      decoded = decodeJob(job.data, job.opts.priority ?? 0);
    } catch (err) {
      const key = (job.data as { b?: unknown } | null)?.b;
      if (typeof key === 'string' && key !== '') this.dropRowBytes(key);
      throw err;
    }
    // The row bytes are deleted once the job is done with, not when read: a replica that dies holding the job
    // leaves them for the one that runs it again.
    try {
      await this.processRows(decoded, job.stalledCounter > 0);
    } finally {
      if (decoded.bytesKey) this.dropRowBytes(decoded.bytesKey);
    }
  }

  private async processRows(job: DecodedJob, runAgain: boolean): Promise<void> {
    const decoded = job.rows;
    if (decoded.length === 0) return;
    this.noteJobSize(decoded.length);
    // A job run again after its replica died was already taken off the shared depth by that replica.
    if (!runAgain) this.depth.removeTaken(decoded[0].modelId, decoded[0].priority, decoded.map((r) => r.deadline));
    const rows = this.runner.dropExpired(decoded);
    if (rows.length === 0) return;
    const modelId = rows[0].modelId;
    if (!this.registry.has(modelId)) {
      this.runner.reject(rows, new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${modelId}' is not registered`));
      return;
    }
    if (job.bytesKey) {
      const problem = await this.readRowBytes(job);
      if (problem) {
        this.runner.reject(rows, problem);
        return;
      }
    }
    const model = this.registry.get(modelId);
    const unavailable = this.unavailable(model);
    if (unavailable) {
      this.runner.reject(rows, unavailable);
      return;
    }
    const valid: QueuedRow[] = [];
    for (const row of rows) {
      const problem = this.registry.checkRow(modelId, row.row);
      if (problem) this.runner.reject([row], new BalesError(ErrorCode.INVALID_INPUT, problem));
      else valid.push(row);
    }
    await new Promise<void>((resolve) => {
      let left = valid.length;
      if (left === 0) return resolve();
      const done = () => {
        if (--left === 0) resolve();
      };
      const lanes = new Map<string, BatchItem[]>();
      for (const row of valid) {
        const key = laneKey(row, model);
        // Decoded for this job alone, so each row becomes its batch item in place rather than by copy.
        const item = row as BatchItem;
        item.done = done;
        const lane = lanes.get(key);
        if (lane) lane.push(item);
        else lanes.set(key, [item]);
      }
      for (const [key, items] of lanes) this.batcher.add(key, model.maxBatchSize, items);
    });
  }

  /**
   * Runs one of this replica's own requests at once when nothing can be more urgent: the fetch waits on an empty
   * queue, so no job waits in Redis (but one written in the last round trip), and a worker thread is free. Its row
   * counts in the shared depth as written and taken at once, like a job's.
   */
  private takeDirect(row: QueuedRow): boolean {
    if (!this.worker?.waitingOnEmptyQueue || !this.batcher.idle || !this.registry.has(row.modelId)) return false;
    const model = this.registry.get(row.modelId);
    if (model.state !== ModelState.READY) return false;
    this.depth.removeTaken(row.modelId, row.priority, [row.deadline]);
    this.metrics.directRow();
    const item = row as BatchItem;
    item.done = () => undefined;
    this.batcher.add(laneKey(row, model), model.maxBatchSize, [item]);
    return true;
  }

  /**
   * Why rows of a model this replica holds but cannot run (it failed to load here, or is loading again) are answered
   * 503, or undefined. A draining model still runs what was accepted.
   */
  private unavailable(model: ModelInfo): BalesError | undefined {
    const modelId = model.id;
    if (model.state === ModelState.LOADING) return new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${modelId}' is loading on the replica that took this request; retry shortly`);
    if (model.state !== ModelState.FAILED) return undefined;
    return new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${modelId}' failed to load on the replica that took this request${model.reason ? `: ${model.reason}` : ''}`);
  }

  /** Fills a job's rows from their bytes' key; returns the error its rows get when that fails. */
  private async readRowBytes(job: DecodedJob): Promise<BalesError | undefined> {
    let bytes: Buffer | null;
    try {
      if (!this.rowBytes) throw new Error('no Redis connection for row bytes');
      bytes = await this.rowBytes.getBuffer(job.bytesKey!);
    } catch (err) {
      this.redis.logError(err as Error);
      return new BalesError(ErrorCode.QUEUE_UNAVAILABLE, "the rows' input bytes could not be read from the queue (Redis); retry shortly");
    }
    const problem = attachRowBytes(job, bytes);
    if (!problem) return undefined;
    return new BalesError(bytes ? ErrorCode.INVALID_INPUT : ErrorCode.QUEUE_UNAVAILABLE, problem);
  }

  private dropRowBytes(key: string): void {
    this.rowBytes?.del(key).catch((err: Error) => this.redis.logError(err));
  }

  private async runBatch(items: BatchItem[]): Promise<void> {
    // Its rows leave the waiting count: room for more jobs.
    this.worker?.startFetches();
    try {
      await this.runner.run(items[0].modelId, items);
    } finally {
      for (const item of items) item.done();
    }
  }
}
