import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { epochNow } from './clock';
import { QueueConnection } from './queue-connection';

/** Rows queued for one model, per priority (1 is most urgent). */
export type DepthByPriority = Record<number, number>;

// Producers read the shared counts this often; between reads a replica adds what it enqueued itself.
export const DEPTH_REFRESH_MS = 100;

const bucketOf = (deadline: number) => Math.ceil(deadline / 1000);

/** Adds n to the count under key. */
function addTo(counts: Map<string, number>, key: string, n: number): void {
  counts.set(key, (counts.get(key) ?? 0) + n);
}

/** Adds every count of `from` to `into`. */
function addAll(into: Map<string, number>, from: Map<string, number>): void {
  for (const [key, n] of from) addTo(into, key, n);
}

/**
 * Queued rows per model and priority, shared by every replica through one Redis hash.
 *
 * Each field is `model|priority|deadline second`. A replica reports the rows it wrote and the rows its processor
 * took together, as one net HINCRBY per field in its next read (every DEPTH_REFRESH_MS), rather than a command per
 * job, which at low rates is a large share of the gateway's Redis calls (docs/benchmarks.md). Until then it counts
 * them itself. A field whose second has passed counts for nothing and is deleted: its
 * rows are past their deadline, so they will be skipped unrun anyway. Any drift (a replica killed before reporting)
 * therefore lives at most as long as the longest deadline, BATCHER_TIMEOUT_S; a count reported by one replica
 * before another reported the rows it wrote is below zero for up to one read, and is read as zero.
 */
@Injectable()
export class QueueDepth implements OnModuleInit, BeforeApplicationShutdown {
  private readonly key: string;
  private shared = new Map<string, DepthByPriority>();
  /** `shared` summed over priorities, per model: total() runs for every request. */
  private sharedTotal = new Map<string, number>();
  /** Rows this replica counted (or gave back, negative) since the last read was sent: not in `shared` yet. */
  private sinceRead = new Map<string, number>();
  /** Rows counted between sending the current read and its reply. */
  private duringRead = new Map<string, number>();
  /** Rows this replica wrote (or gave back, negative), not yet added in Redis: field -> rows. */
  private written = new Map<string, number>();
  /** Rows this replica's processor took, not yet subtracted in Redis: field -> rows. */
  private taken = new Map<string, number>();
  /** `taken` summed per model. */
  private takenByModel = new Map<string, number>();
  private reading = false;
  private timer?: NodeJS.Timeout;
  private beforeRead: () => void = () => undefined;

  constructor(
    config: BalesConfig,
    private readonly connection: QueueConnection,
  ) {
    this.key = `${config.QUEUE_PREFIX}:depth`;
  }

  onModuleInit(): void {
    this.timer = setInterval(() => {
      this.beforeRead();
      void this.refresh(epochNow());
    }, DEPTH_REFRESH_MS).unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Runs before each timed read: the producer writes the rows it accepted so far, so the read includes them. */
  beforeEachRead(callback: () => void): void {
    this.beforeRead = callback;
  }

  /** Rows queued for a model across replicas, as of the last read plus what this replica added since. */
  total(modelId: string): number {
    const n = (this.sharedTotal.get(modelId) ?? 0) + (this.sinceRead.get(modelId) ?? 0) + (this.duringRead.get(modelId) ?? 0) - (this.takenByModel.get(modelId) ?? 0);
    return Math.max(0, n);
  }

  /** Per model and priority, as of the last read (refreshed every DEPTH_REFRESH_MS). */
  snapshot(): Record<string, DepthByPriority> {
    return Object.fromEntries([...this.shared].map(([model, byPriority]) => [model, { ...byPriority }]));
  }

  /** Counts rows accepted by this replica at once, before they are written, so a burst in one tick is bounded too. */
  addAccepted(modelId: string): void {
    addTo(this.sinceRead, modelId, 1);
  }

  /** Records rows written to the queue; they are added in Redis with the next read. */
  addWritten(modelId: string, priority: number, deadlines: number[]): void {
    this.count(this.written, modelId, priority, deadlines, 1);
  }

  /**
   * Gives back rows that were counted but never written (the write failed) or were removed before running. They
   * leave this replica's own count at once, as accepted rows enter it, and Redis's with the next read.
   */
  removeUnrun(modelId: string, priority: number, deadlines: number[]): void {
    addTo(this.sinceRead, modelId, -deadlines.length);
    this.count(this.written, modelId, priority, deadlines, -1);
  }

  /** Records rows the processor took; they are subtracted in Redis with the next read, not one call per job. */
  removeTaken(modelId: string, priority: number, deadlines: number[]): void {
    this.count(this.taken, modelId, priority, deadlines, 1);
    addTo(this.takenByModel, modelId, deadlines.length);
  }

  /**
   * One round trip: reports what this replica wrote and its processor took, drops expired fields, reads the rest.
   * Skipped while a read is still out, so an outage never piles up commands. Rows written before it are in the
   * read, and the timer writes the producer's gathered rows first (beforeEachRead).
   */
  async refresh(now: number): Promise<void> {
    const client = this.connection.client;
    if (this.reading || client?.status !== 'ready') return;
    this.reading = true;
    const [written, taken, takenByModel] = [this.written, this.taken, this.takenByModel];
    [this.written, this.taken, this.takenByModel] = [new Map(), new Map(), new Map()];
    this.duringRead = this.sinceRead;
    this.sinceRead = new Map();
    try {
      const net = new Map(written);
      for (const [field, n] of taken) addTo(net, field, -n);
      const multi = client.multi();
      for (const [field, n] of net) if (n !== 0) multi.hincrby(this.key, field, n);
      multi.hgetall(this.key);
      const replies = await multi.exec();
      const all = replies?.[replies.length - 1]?.[1] as Record<string, string> | undefined;
      if (!all) throw new Error('depth read failed');
      const current = bucketOf(now);
      const shared = new Map<string, DepthByPriority>();
      const expired: string[] = [];
      for (const [field, value] of Object.entries(all)) {
        const [model, priority, second] = field.split('|');
        if (Number(second) < current) {
          expired.push(field);
          continue;
        }
        const byPriority = shared.get(model) ?? {};
        // A negative count (a job taken twice after a stall) must not make room for more than the bound.
        byPriority[Number(priority)] = Math.max(0, (byPriority[Number(priority)] ?? 0) + Number(value));
        shared.set(model, byPriority);
      }
      this.shared = shared;
      this.sharedTotal = new Map([...shared].map(([model, byPriority]) => [model, Object.values(byPriority).reduce((a, b) => a + b, 0)]));
      if (expired.length) await client.hdel(this.key, ...expired);
    } catch {
      // Not reported this time: keep it for the next read.
      addAll(this.written, written);
      addAll(this.taken, taken);
      addAll(this.takenByModel, takenByModel);
    } finally {
      this.duringRead = new Map();
      this.reading = false;
    }
  }

  /** Adds `sign` per row to the row's field in `counts`: once per run of rows in the same second (a job's rows mostly are). */
  private count(counts: Map<string, number>, modelId: string, priority: number, deadlines: number[], sign: 1 | -1): void {
    for (let i = 0; i < deadlines.length; ) {
      const second = bucketOf(deadlines[i]);
      let rows = 0;
      for (; i < deadlines.length && bucketOf(deadlines[i]) === second; i++) rows++;
      addTo(counts, `${modelId}|${priority}|${second}`, sign * rows);
    }
  }
}
