import { Job, Processor, Worker, WorkerOptions } from 'bullmq';

/** Fetches in flight at most once jobs are known to be waiting: about one batch of one-row jobs per round trip. */
const MAX_WINDOW = 64;
/** After a failed fetch (Redis unreachable), the next try waits this long; BullMQ's own loop waits 15 s. */
const RETRY_DELAY_MS = 1000;

/**
 * A BullMQ worker that fetches the way a batching consumer needs, in place of BullMQ's own fetch loop.
 *
 * BullMQ's loop fetches one job per Redis round trip and hands a fetched job to the processor only when its run
 * of fetches ends (it has as many jobs as its concurrency, or the queue is empty); under steady traffic that run
 * rarely ends, so fetched jobs wait (docs/benchmarks.md). Here:
 * - each job goes to the processor the moment its fetch returns;
 * - fetches run side by side, sent together on one connection, so a backlog of jobs arrives in one round trip
 *   rather than one per job. While the queue keeps answering with jobs the window doubles, up to MAX_WINDOW; the
 *   first empty answer closes it to a single fetch that blocks on the queue's marker until a job is written;
 * - the consumer bounds it: `jobsWanted()` says how many more jobs it wants now, and `startFetches()` is called when that grows.
 *
 * Locks, stalled-job checks, completion and closing stay BullMQ's: jobs go through its public `processJob`, which
 * tracks each job's lock and completes or fails it, and `close()` waits for this loop as it would for its own.
 */
export class BatchingWorker<Data = unknown> extends Worker<Data> {
  // Named apart from Worker's own fields: TypeScript's private fields are plain properties at run time.
  private fetchesInFlight = 0;
  /** Fetches to keep out: 1 (one blocking fetch) until the queue answers with jobs, then doubling per job. */
  private fetchWindow = 1;
  private fetchTokens = 0;
  /**
   * The queue's latest answer was empty, and a fetch has been out ever since: from then until a job comes, the one
   * fetch out blocks on the queue. Once no fetch is out (the consumer wants no more jobs), jobs may be written
   * unseen, so the queue counts as not known to be empty until a fetch answers again.
   */
  private queueEmpty = false;
  private readonly jobsHeld = new Set<Promise<unknown>>();
  private retryTimer?: NodeJS.Timeout;
  private loopEnded?: () => void;

  constructor(
    name: string,
    processor: Processor<Data>,
    opts: WorkerOptions,
    private readonly jobsWanted: () => number,
  ) {
    super(name, processor, { ...opts, autorun: false });
    // BullMQ emits 'closing' before it sets `closing`: look once it has.
    this.on('closing', () => queueMicrotask(() => this.startFetches()));
  }

  override async run(): Promise<void> {
    if (this.running) throw new Error('Worker is already running.');
    this.running = true;
    try {
      if (this.closing) return;
      await this.startStalledCheckTimer();
      if (!this.opts.skipLockRenewal) this.lockManager.start();
      // close() waits for this promise before closing the connections, as it waits for BullMQ's own loop.
      this.mainLoopRunning = new Promise<void>((resolve) => (this.loopEnded = resolve));
      this.startFetches();
      await this.mainLoopRunning;
    } finally {
      this.running = false;
    }
  }

  /**
   * True while the queue's latest answer was empty: no job waits in Redis, unless one was written during the last
   * round trip, which the blocking fetch is bringing. Jobs in hand do not matter: their rows are already in the
   * batcher, in priority order with whatever joins them.
   */
  get waitingOnEmptyQueue(): boolean {
    return this.queueEmpty && this.fetchesInFlight <= 1 && !this.closing && !this.retryTimer;
  }

  /** Starts as many fetches as the consumer wants jobs. Call it whenever it may want more. */
  startFetches(): void {
    if (!this.loopEnded) return;
    if (this.closing) {
      clearTimeout(this.retryTimer);
      if (this.fetchesInFlight === 0 && this.jobsHeld.size === 0) this.loopEnded();
      return;
    }
    // BALES never pauses a worker; a paused one must not spin on fetches that return at once.
    if (!this.retryTimer && !this.paused) {
      const n = Math.min(this.jobsWanted(), this.fetchWindow) - this.fetchesInFlight;
      for (let i = 0; i < n; i++) this.fetchOne();
    }
    // With no fetch out, nothing sees jobs written from now on: the queue is no longer known to be empty.
    if (this.fetchesInFlight === 0) this.queueEmpty = false;
  }

  private fetchOne(): void {
    this.fetchesInFlight++;
    const token = `${this.id}:${this.fetchTokens++}`;
    // While one fetch blocks on the marker, BullMQ sends any other straight to Redis; only a drained worker blocks.
    this.getNextJob(token, { block: true }).then(
      (job) => {
        // Counted until handed over: the consumer may call startFetches() from inside processJob, before the job is held,
        // and a closing worker must not see itself idle then.
        this.handOver(job);
        this.fetchesInFlight--;
        this.startFetches();
      },
      (err: Error) => {
        this.fetchesInFlight--;
        if (!this.closing) this.emit('error', err);
        this.retryTimer ??= setTimeout(() => {
          this.retryTimer = undefined;
          this.startFetches();
        }, RETRY_DELAY_MS);
        this.startFetches();
      },
    );
  }

  /** Hands a fetched job to the processor at once and widens the window; an empty answer closes it. */
  private handOver(job: Job<Data> | undefined | void): void {
    this.queueEmpty = !job;
    if (!job) {
      this.fetchWindow = 1;
      return;
    }
    this.fetchWindow = Math.min(this.fetchWindow * 2, MAX_WINDOW);
    let fetchingNext = false;
    // Completing a job can fetch the next one in the same script, when there is room for it.
    // BullMQ asks again when it retries a completion that failed on a lost connection: the fetch counts once.
    const processed = this.processJob(job, job.token!, () => {
      if (!fetchingNext && !this.closing && this.jobsWanted() > this.fetchesInFlight) {
        fetchingNext = true;
        this.fetchesInFlight++;
      }
      return fetchingNext;
    });
    this.jobsHeld.add(processed);
    processed
      .then(
        (next) => {
          if (!fetchingNext) return;
          this.fetchesInFlight--;
          this.handOver(next);
        },
        (err: Error) => {
          if (fetchingNext) this.fetchesInFlight--;
          this.emit('error', err);
        },
      )
      .finally(() => {
        this.jobsHeld.delete(processed);
        this.startFetches();
      });
  }
}
