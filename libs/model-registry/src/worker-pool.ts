import { extname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { RunReply, Signature, WorkerReply, WorkerRequest } from './protocol';

// Compiled builds run session.worker.js; under jest or swc-node the sources are .ts, and a worker thread
// has no transformer of its own, so it gets the same register hook.
const WORKER_FILE = join(__dirname, `session.worker${extname(__filename)}`);
const WORKER_EXEC_ARGV = extname(__filename) === '.ts' ? ['--require', '@swc-node/register'] : [];

/**
 * Switches off V8's memory reducer for the session workers, before the first one starts. The reducer takes an
 * isolate that allocates little for idle and runs full, compacting GCs on it to give memory back. Session workers
 * allocate little (their tensors are native memory), so under steady traffic it took them: 20 to 67 ms pauses
 * (`--trace-gc`, 1,000 req/s on 2 cores), during which the rows of the batch the worker held waited (queued_ms up
 * to 88 ms). Their heaps are about 20 MB whatever the traffic, so there is little to give back. Set at run time, the
 * flag reaches every worker started from here on, but not the main thread's isolate, which already exists: idle,
 * it still ran reducer GCs in the spec's trace (README, "GC pauses in the worker threads").
 */
function disableMemoryReducer(): void {
  setFlagsFromString('--no-memory-reducer');
}

type Pending = { resolve: (reply: WorkerReply & { ok: true }) => void; reject: (err: Error) => void };
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

class SessionWorker {
  readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private onDrained?: () => void;

  constructor(
    readonly thread: Worker,
    onExit: (worker: SessionWorker, err: Error) => void,
  ) {
    thread.on('message', (reply: WorkerReply) => {
      const pending = this.pending.get(reply.id);
      if (!pending) return;
      this.pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply);
      else pending.reject(new Error(reply.error));
      if (this.pending.size === 0) this.onDrained?.();
    });
    thread.on('error', (err) => onExit(this, err));
    thread.on('exit', (code) => onExit(this, new Error(`session worker exited with code ${code}`)));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  request(msg: Request, transfer: ArrayBuffer[] = []): Promise<WorkerReply & { ok: true }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...msg, id }, transfer);
    });
  }

  /** Resolves once nothing sent to this worker is still running. */
  drained(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onDrained = resolve));
  }

  failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/**
 * THREAD_POOL_SIZE worker threads, each holding its own ONNX Runtime sessions.
 * A batch goes to the worker with the fewest batches in flight.
 */
export class WorkerPool {
  private workers: SessionWorker[] = [];
  private closing = false;

  constructor(
    private readonly size: number,
    /** Called after a crashed worker was replaced, so the registry can load its sessions into it. */
    private readonly onRespawn: (index: number) => void,
  ) {}

  start(): void {
    disableMemoryReducer();
    this.workers = Array.from({ length: this.size }, () => this.spawn());
  }

  /** Loads (or replaces) a session under `key` in every worker, warmed with one run; returns its signature. */
  async loadEverywhere(key: string, path: string, intraOpThreads: number): Promise<Signature> {
    const replies = await Promise.allSettled(this.workers.map((w) => w.request({ op: 'load', key, path, intraOpThreads })));
    const failed = replies.find((r) => r.status === 'rejected');
    if (failed) {
      await this.unloadEverywhere(key);
      throw (failed as PromiseRejectedResult).reason;
    }
    return (replies[0] as PromiseFulfilledResult<WorkerReply & { ok: true }>).value.signature!;
  }

  async loadInto(index: number, key: string, path: string, intraOpThreads: number): Promise<void> {
    await this.workers[index].request({ op: 'load', key, path, intraOpThreads });
  }

  async unloadEverywhere(key: string): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.request({ op: 'unload', key })));
  }

  async run(msg: Extract<Request, { op: 'run' }>): Promise<RunReply> {
    let target = this.workers[0];
    for (const w of this.workers) if (w.inFlight < target.inFlight) target = w;
    const reply = await target.request(
      msg,
      msg.feeds.map((f) => f.data),
    );
    return reply.run!;
  }

  /**
   * Replaces each worker in turn with a fresh thread holding the same sessions, so native memory that
   * ONNX Runtime does not hand back after many session loads goes with the old thread. Each old worker
   * finishes the batches it holds before it is terminated; the others keep serving meanwhile.
   */
  async recycle(sessions: { key: string; path: string }[], intraOpThreads: number): Promise<void> {
    for (let i = 0; i < this.workers.length && !this.closing; i++) {
      const fresh = this.spawn();
      await Promise.all(sessions.map(({ key, path }) => fresh.request({ op: 'load', key, path, intraOpThreads })));
      const old = this.workers[i];
      this.workers[i] = fresh;
      await old.drained();
      await old.thread.terminate();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
    this.workers = [];
  }

  private spawn(): SessionWorker {
    const thread = new Worker(WORKER_FILE, { execArgv: WORKER_EXEC_ARGV });
    return new SessionWorker(thread, (worker, err) => this.replace(worker, err));
  }

  private replace(worker: SessionWorker, err: Error): void {
    worker.failAll(err);
    const index = this.workers.indexOf(worker);
    if (index < 0 || this.closing) return;
    this.workers[index] = this.spawn();
    this.onRespawn(index);
  }
}
