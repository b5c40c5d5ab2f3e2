import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelInfo, ModelRegistry, ModelState, batchKey } from '@bales/model-registry';
import { BalesMetrics, WorkerLoad } from '@bales/observability';
import { BatchRunner } from './batch-runner';
import { BatchingWorker } from './batching-worker';
import { DirectDispatch } from './direct-dispatch';
import { DynamicBatcher } from './dynamic-batcher';
import { DecodedJob, QueuedRow, attachRowBytes, decodeJob, versionQueue } from './job-codec';
import { ModelQueues } from './model-queues';
import { RowCounts } from './row-counts';
import { QueueConnection } from './queue-connection';
import { QueueDepth } from './queue-depth';
import { INFER_WORKER_SETTINGS } from './queue-settings';
import { RedisConnections, keepErrorSinks } from './redis-connections';

type BatchItem = QueuedRow & { done: () => void };

/** Rows batch with rows of the same model version and item shape only, and equal values of inputs with no batch axis. */
const laneKey = (row: QueuedRow, model: ModelInfo) => `${row.modelId}|${row.version}|${batchKey(model, row.row)}`;
/** How often a retiring version's queue is looked at until it is empty. */
const RETIRE_POLL_MS = 100;

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
  /** One fetch loop per model version this replica holds, by queue name. */
  private readonly workers = new Map<string, BatchingWorker>();
  /** Rows in hand (fetched, batching or running) per queue name: a version is released only with none left. */
  private readonly inHand = new RowCounts();
  private started = false;
  private largestRecentJobRows: number;
  /** Version queues that another live replica holds with room to run more, as of the fleet's latest heartbeats. */
  private peerRoom: ReadonlySet<string> = new Set();
  /** Set when the processor starts; jobs whose rows' bytes are apart need it. */
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
    private readonly queues: ModelQueues,
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
    this.started = true;
    // Its own connection: fetch loops come and go with model versions.
    this.rowBytes = this.redis.open('row-bytes');
    this.registry.onChange(() => this.follow());
    this.follow();
    this.direct.rowBytes.enable();
    if (this.config.DIRECT_DISPATCH) this.direct.offer((row) => this.takeDirect(row));
  }

  /**
   * Runs a fetch loop for each model version the registry holds, and stops the loop of one it no longer holds
   * (its jobs in hand finish first). Called whenever the registry changes.
   */
  private follow(): void {
    if (!this.started) return;
    const held = new Set<string>();
    for (const { id, version } of this.registry.runnable()) {
      const name = versionQueue(id, version);
      held.add(name);
      if (!this.workers.has(name)) this.startWorker(name);
    }
    for (const [name, worker] of this.workers) {
      if (held.has(name)) continue;
      this.workers.delete(name);
      void this.closeWorker(worker);
    }
  }

  private startWorker(name: string): void {
    const worker = new BatchingWorker(
      name,
      (job) => this.process(job),
      {
        connection: { ...this.redis.options, maxRetriesPerRequest: null },
        prefix: this.config.QUEUE_PREFIX,
        ...INFER_WORKER_SETTINGS,
      },
      () => this.jobsWanted(),
    );
    this.workers.set(name, worker);
    worker.on('error', (err) => this.redis.logError(err));
    keepErrorSinks(worker, (err) => this.redis.logError(err));
    worker.on('stalled', (jobId) => this.logger.warn(`job ${jobId} was held by a replica that stopped renewing its lock; running it again`));
    worker.run().catch((err: Error) => this.redis.logError(err));
  }

  /**
   * Resolves once no work is left anywhere for a model version: its queue in Redis holds no job (queued, or
   * held by any replica) and this replica holds none of its rows. Called after every replica stopped writing
   * jobs for it; the registry may then release it.
   */
  async drained(modelId: string, version: string): Promise<void> {
    const name = versionQueue(modelId, version);
    for (;;) {
      const left = await this.queues.unfinished(modelId, version).catch(() => 1);
      if (left === 0 && !this.inHand.has(name)) break;
      await new Promise((r) => setTimeout(r, RETIRE_POLL_MS).unref());
    }
    // A job fetched in the last round trip finishes before this replica stops fetching the version.
    const worker = this.workers.get(name);
    if (worker) {
      this.workers.delete(name);
      await this.closeWorker(worker);
    }
    await this.queues.forget(modelId, version);
  }

  /** Worker-thread milliseconds spent running batches since boot, and the threads there are: this replica's load. */
  get load(): WorkerLoad {
    return { busyMs: this.batcher.busyMs, threads: this.registry.slots };
  }

  /**
   * The version queues (`versionQueue(id, version)`) that another replica holds with room to run more: while this
   * replica is busy, its requests for those go through Redis, where that replica fetches them.
   */
  setPeerRoom(queues: ReadonlySet<string>): void {
    this.peerRoom = queues;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.direct.offer(undefined);
    this.started = false;
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => this.closeWorker(w)));
  }

  /** Closes one fetch loop; jobs in hand are finished (their clients answered) unless Redis is gone. */
  private async closeWorker(worker: BatchingWorker): Promise<void> {
    // A BullMQ connection closed while still connecting emits 'error' after its listeners are gone, an
    // uncaught "Connection is closed." that kills the process; a young worker may finish connecting first.
    if (this.connection.connected) {
      await Promise.race([worker.waitUntilReady().catch(() => undefined), new Promise((r) => setTimeout(r, READY_WAIT_MS).unref())]);
    }
    const closed = worker.close(!this.connection.connected).then(() => true, () => true);
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.config.SHUTDOWN_TIMEOUT_S * 1000).unref());
    if (!(await Promise.race([closed, timeout]))) await worker.disconnect().catch(() => undefined);
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
    const { modelId, version } = rows[0];
    if (!this.registry.has(modelId) && !this.registry.version(modelId, version)) {
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
    const model = this.registry.version(modelId, version);
    if (!model) {
      this.runner.reject(rows, this.unavailable(modelId, version));
      return;
    }
    const valid: QueuedRow[] = [];
    for (const row of rows) {
      const problem = this.registry.checkRow(modelId, row.row, version);
      if (problem) this.runner.reject([row], new BalesError(ErrorCode.INVALID_INPUT, problem));
      else valid.push(row);
    }
    const name = versionQueue(modelId, version);
    this.hold(name, valid.length);
    await new Promise<void>((resolve) => {
      let left = valid.length;
      if (left === 0) return resolve();
      const done = () => {
        this.hold(name, -1);
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
   * Takes one of this replica's own requests straight into its batches when nothing can be more urgent: the fetch
   * waits on an empty queue, so no job waits in Redis (but one written in the last round trip). With a worker
   * thread free it runs at once. With all busy it waits here in priority order, as a fetched job's rows would, while
   * fewer than the fetch bound wait and no other replica holding the version has room: one that does would start
   * it sooner from Redis. Its row counts in the shared depth as written and taken at once, like a job's.
   */
  private takeDirect(row: QueuedRow): boolean {
    const name = versionQueue(row.modelId, row.version);
    if (!this.workers.get(name)?.waitingOnEmptyQueue) return false;
    if (!this.batcher.idle && (this.jobsWanted() === 0 || this.peerRoom.has(name))) return false;
    const model = this.registry.version(row.modelId, row.version);
    if (model?.state !== ModelState.READY) return false;
    this.depth.removeTaken(row.modelId, row.priority, [row.deadline]);
    this.metrics.directRow();
    this.hold(name, 1);
    const item = row as BatchItem;
    item.done = () => this.hold(name, -1);
    this.batcher.add(laneKey(row, model), model.maxBatchSize, [item]);
    return true;
  }

  private hold(name: string, rows: number): void {
    this.inHand.add(name, rows);
  }

  /**
   * Why rows of a model version this replica does not hold are answered 503: the model failed to load here, is
   * loading again, or this version is gone here.
   */
  private unavailable(modelId: string, version: string): BalesError {
    const model = this.registry.has(modelId) ? this.registry.get(modelId) : undefined;
    // The same fields as the MODEL_UNAVAILABLE of the replica that holds the client.
    const details = { model_id: modelId, ...(model && { state: model.state }), ...(model?.reason && { reason: model.reason }) };
    if (model?.state === ModelState.LOADING) return new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${modelId}' is loading on the replica that took this request; retry shortly`, details);
    if (model?.state === ModelState.FAILED) return new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${modelId}' failed to load on the replica that took this request${model.reason ? `: ${model.reason}` : ''}`, details);
    return new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${modelId}' v${version} is not held by the replica that took this request; retry shortly`, details);
  }

  /**
   * Fills a job's rows from their bytes' key, or from memory when this replica wrote the job; returns the error its
   * rows get when that fails.
   */
  private async readRowBytes(job: DecodedJob): Promise<BalesError | undefined> {
    const kept = job.rows[0]?.origin === this.redis.instanceId ? this.direct.rowBytes.take(job.bytesKey!) : undefined;
    if (kept) {
      const problem = attachRowBytes(job, kept);
      return problem ? new BalesError(ErrorCode.INVALID_INPUT, problem) : undefined;
    }
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

  /** A job is done with: its row bytes go from Redis, and from memory where this replica kept them unread. */
  private dropRowBytes(key: string): void {
    this.direct.rowBytes.drop(key);
    this.rowBytes?.del(key).catch((err: Error) => this.redis.logError(err));
  }

  private async runBatch(items: BatchItem[]): Promise<void> {
    // Its rows leave the waiting count: room for more jobs.
    for (const worker of this.workers.values()) worker.startFetches();
    try {
      await this.runner.run(items[0].modelId, items, items[0].version);
    } finally {
      for (const item of items) item.done();
    }
  }
}
