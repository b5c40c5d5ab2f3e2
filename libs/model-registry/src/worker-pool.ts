import { Logger } from '@nestjs/common';
import { availableParallelism } from 'node:os';
import { extname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { BalesConfig } from '@bales/config';
import { stackRows, type BatchLayout } from './batch-axes';
import type { EncodedRow } from './input-encoder';
import { ReusedBuffers, feedOffsets } from './reused-buffers';
import { LoadFailure, TYPED_ARRAYS, type ElementType, type Feed, type FeedMemory, type RunReply, type Signature, type Task, type TensorSpec, type WarmupReport, type WarmupSetting, type WorkerReply, type WorkerRequest } from './protocol';

// Compiled builds run session.worker.js; under jest or swc-node the sources are .ts, and a worker thread
// has no transformer of its own, so it gets the same register hook.
const WORKER_FILE = join(__dirname, `session.worker${extname(__filename)}`);
const WORKER_EXEC_ARGV = extname(__filename) === '.ts' ? ['--require', '@swc-node/register'] : [];

/**
 * Switches off V8's memory reducer for the session workers, before the first one starts. Session workers allocate
 * little (their tensors are native memory), so the reducer took them for full, compacting GCs under steady traffic,
 * and every row of the batch a paused worker held waited; their heaps stay small, so there is little to give back
 * (docs/operations.md, Memory). Set at run time, the flag reaches every worker started from here on, but not the
 * main thread's isolate, which already exists.
 */
function disableMemoryReducer(): void {
  setFlagsFromString('--no-memory-reducer');
}

type Pending = { resolve: (reply: WorkerReply & { ok: true }) => void; reject: (err: Error) => void };
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type RunRequest = Request & { op: 'run' };

/** Memory shared with one worker thread, which the batches sent to it fill in turn. */
interface SharedFeeds {
  id: number;
  memory: SharedArrayBuffer;
  readonly byteLength: number;
  /** Whether the worker holds it already: it is sent once, then named by id. */
  sent: boolean;
}

class SessionWorker {
  readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private drainWaiters: (() => void)[] = [];
  /** One per batch in flight to this worker (its batch's inputs are read until the reply), kept for the next. */
  private readonly feedMemory = new ReusedBuffers<SharedFeeds>((bytes) => ({ id: this.nextMemoryId++, memory: new SharedArrayBuffer(bytes), byteLength: bytes, sent: false }));
  private nextMemoryId = 1;
  /** Memory dropped here that the worker still holds: it forgets it with the next batch. */
  private forget: number[] = [];

  constructor(
    readonly thread: Worker,
    onExit: (worker: SessionWorker, err: Error) => void,
  ) {
    thread.on('message', (reply: WorkerReply) => {
      const pending = this.pending.get(reply.id);
      if (!pending) return;
      this.pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply);
      else pending.reject(reply.kind ? new LoadFailure(reply.kind, reply.error, reply.signature) : new Error(reply.error));
      if (this.pending.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
    });
    thread.on('error', (err) => onExit(this, err));
    thread.on('exit', (code) => onExit(this, new Error(`session worker exited with code ${code}`)));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  request(msg: Request): Promise<WorkerReply & { ok: true }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...msg, id });
    });
  }

  /**
   * Runs a batch: `fill` writes its inputs into shared memory of `bytes`, which the worker copies out of, and says
   * where each one is; the memory is this batch's until the worker answers.
   */
  async run(msg: Omit<RunRequest, 'memory' | 'feeds'>, bytes: number, fill: (into: Buffer) => Feed[]): Promise<RunReply> {
    const shared = this.feedMemory.take(bytes);
    try {
      const feeds = fill(Buffer.from(shared.memory, 0, bytes));
      const memory: FeedMemory = { id: shared.id, bytes, ...(shared.sent ? {} : { memory: shared.memory }), ...(this.forget.length ? { forget: this.forget.splice(0) } : {}) };
      shared.sent = true;
      return (await this.request({ ...msg, feeds, memory })).run!;
    } finally {
      const dropped = this.feedMemory.give(shared);
      if (dropped?.sent) this.forget.push(dropped.id);
    }
  }

  /** Resolves once nothing sent to this worker is still running. */
  drained(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

/** A session every worker thread holds: its key, the weights it was loaded from, and how it is warmed. */
export interface HeldSession {
  key: string;
  path: string;
  warmup: WarmupSetting;
  /** config.json's batch_axes: where a made-up warm-up input puts its batch. */
  batchAxes?: unknown;
}

/** A session loaded in every worker: the signature it read, and how its warm-up went. */
export interface LoadedSession {
  signature: Signature;
  warmup: WarmupReport;
}

/** One batch for a session: rows stacked along each input's batch axis. */
export interface Batch {
  key: string;
  task: Task;
  labels?: string[];
  inputs: TensorSpec[];
  layout: BatchLayout;
  rows: EncodedRow[];
}

export type WorkerPoolConfig = Pick<BalesConfig, 'THREAD_POOL_SIZE' | 'ORT_INTRA_OP_THREADS' | 'WORKER_RECYCLE_RSS_GROWTH_PCT'>;

/**
 * THREAD_POOL_SIZE worker threads, each holding its own ONNX Runtime sessions.
 * A batch goes to the worker with the fewest batches in flight.
 */
export class WorkerPool {
  private readonly logger = new Logger(WorkerPool.name);
  private readonly intraOpThreads: number;
  private workers: SessionWorker[] = [];
  private closing = false;
  /** Loads and recycling change what every worker holds, so they run one at a time. */
  private changes: Promise<unknown> = Promise.resolve();
  /** RSS after boot or after the last recycle: what reload-driven growth is measured against. */
  private rssBaseline = 0;

  constructor(
    private readonly config: WorkerPoolConfig,
    /** The sessions a replaced or recycled worker thread must hold: every model's current version. */
    private readonly currentSessions: () => HeldSession[],
  ) {
    // Each worker thread gets its share of the cores, so the pool never oversubscribes them.
    this.intraOpThreads = config.ORT_INTRA_OP_THREADS || Math.max(1, Math.floor(availableParallelism() / config.THREAD_POOL_SIZE));
  }

  /** How many batches can run at once: one per worker thread. */
  get size(): number {
    return this.config.THREAD_POOL_SIZE;
  }

  /** True from start() until close(). */
  get running(): boolean {
    return this.workers.length > 0 && !this.closing;
  }

  start(): void {
    disableMemoryReducer();
    this.workers = Array.from({ length: this.size }, () => this.spawn());
  }

  /** Loads (or replaces) a session under `key` in every worker, and warms it; rejects with a LoadFailure when it does not load. */
  loadEverywhere(session: HeldSession): Promise<LoadedSession> {
    return this.oneAtATime(async () => {
      const { key } = session;
      const replies = await Promise.allSettled(this.workers.map((w) => this.load(w, session)));
      const failed = replies.find((r) => r.status === 'rejected');
      if (failed) {
        await this.unloadEverywhere(key);
        throw (failed as PromiseRejectedResult).reason;
      }
      const { signature, warmup: report } = (replies[0] as PromiseFulfilledResult<WorkerReply & { ok: true }>).value;
      return { signature: signature!, warmup: report! };
    });
  }

  async unloadEverywhere(key: string): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.request({ op: 'unload', key })));
  }

  /**
   * Stacks the rows into one tensor per input, along its batch axis (an input with none takes the first row's value,
   * which the batch key makes every row's), and runs them as one batch on the least busy worker. The tensors go in
   * memory shared with that worker and reused (ReusedBuffers), not in new buffers.
   */
  async run({ key, task, labels, inputs, layout, rows }: Batch): Promise<RunReply> {
    // While close() waits for running batches, a stopped thread looks idle: a new batch must not go to it.
    if (this.closing) throw new Error('the worker threads are shutting down');
    const sizes = inputs.map((_, i) => (layout.inputs[i] === null ? rows[0].buffers[i].byteLength : rows.reduce((n, r) => n + r.buffers[i].byteLength, 0)));
    const { offsets, total } = feedOffsets(sizes);
    const fill = (into: Buffer): Feed[] =>
      inputs.map((spec, i) => {
        const type = spec.type as ElementType;
        const axis = layout.inputs[i];
        const target = into.subarray(offsets[i], offsets[i] + sizes[i]);
        const place = { name: spec.name, type, offset: offsets[i], byteLength: sizes[i] };
        if (axis === null) {
          rows[0].buffers[i].copy(target);
          return { ...place, dims: rows[0].dims[i] };
        }
        return { ...place, dims: stackRows(rows.map((r) => r.buffers[i]), rows[0].dims[i], axis, TYPED_ARRAYS[type].BYTES_PER_ELEMENT, target) };
      });
    const rawRows = rows.some((r) => r.raw) ? rows.map((r) => r.raw === true) : undefined;
    let target = this.workers[0];
    for (const w of this.workers) if (w.inFlight < target.inFlight) target = w;
    return target.run({ op: 'run', key, task, labels, rows: rows.length, axes: layout.axes, rawRows }, total, fill);
  }

  /** Takes the current RSS as the baseline recycling measures growth against: call once the boot models are loaded. */
  resetRssBaseline(): void {
    this.rssBaseline = process.memoryUsage.rss();
  }

  /**
   * A safety net for native memory that released sessions leave behind (docs/operations.md, Memory): once RSS
   * has grown WORKER_RECYCLE_RSS_GROWTH_PCT since the baseline, fresh worker threads take over.
   */
  recycleIfDue(): void {
    const pct = this.config.WORKER_RECYCLE_RSS_GROWTH_PCT;
    if (pct === 0 || process.memoryUsage.rss() < this.rssBaseline * (1 + pct / 100)) return;
    void this.oneAtATime(async () => {
      const started = performance.now();
      await this.recycle(this.currentSessions());
      this.rssBaseline = process.memoryUsage.rss();
      this.logger.log(`recycled ${this.size} worker threads in ${(performance.now() - started).toFixed(0)} ms`);
    }).catch((err: Error) => this.logger.error(`recycling worker threads: ${err.message}`));
  }

  /**
   * Stops every worker thread once the batches it holds have finished: a thread terminated inside a run aborts the
   * whole process when ONNX Runtime's run completes. Shutdown bounds the wait (SHUTDOWN_TIMEOUT_S).
   */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.workers.map(async (w) => {
        await w.drained();
        await w.thread.terminate();
      }),
    );
    this.workers = [];
  }

  /**
   * Replaces each worker in turn with a fresh thread holding the given sessions (only current versions: batches
   * still running on a replaced one finish on the old thread). Each old worker finishes the batches it holds
   * before it is terminated; the others keep serving meanwhile.
   */
  private async recycle(sessions: HeldSession[]): Promise<void> {
    for (let i = 0; i < this.workers.length && !this.closing; i++) {
      const fresh = this.spawn();
      try {
        await Promise.all(sessions.map((session) => this.load(fresh, session)));
      } catch (err) {
        // The old thread keeps serving; the fresh one must not linger with the sessions it did load.
        await fresh.thread.terminate();
        throw err;
      }
      if (this.closing) {
        // close() has taken the list as it was: the fresh thread would outlive it.
        await fresh.thread.terminate();
        return;
      }
      const old = this.workers[i];
      this.workers[i] = fresh;
      await old.drained();
      await old.thread.terminate();
    }
  }

  private oneAtATime<T>(change: () => Promise<T>): Promise<T> {
    const run = this.changes.then(change, change);
    this.changes = run.catch(() => undefined);
    return run;
  }

  private spawn(): SessionWorker {
    const thread = new Worker(WORKER_FILE, { execArgv: WORKER_EXEC_ARGV });
    return new SessionWorker(thread, (worker, err) => this.replace(worker, err));
  }

  /** A crashed worker's place goes to a fresh thread, which loads every current session again. */
  private replace(worker: SessionWorker, err: Error): void {
    worker.failAll(err);
    const index = this.workers.indexOf(worker);
    if (index < 0 || this.closing) return;
    const fresh = this.spawn();
    this.workers[index] = fresh;
    for (const session of this.currentSessions()) {
      this.load(fresh, session).catch((e: Error) => this.logger.error(`reloading ${session.key} into worker ${index}: ${e.message}`));
    }
  }

  private load(worker: SessionWorker, { key, path, warmup, batchAxes }: HeldSession): Promise<WorkerReply & { ok: true }> {
    return worker.request({ op: 'load', key, path, warmup, batchAxes, intraOpThreads: this.intraOpThreads });
  }
}
