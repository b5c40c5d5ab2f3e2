import type { Redis } from 'ioredis';

/** Rows queued for one model, per priority (1 is most urgent). */
export type DepthByPriority = Record<number, number>;

// Producers read the shared counts this often; between reads a replica adds what it enqueued itself.
export const DEPTH_REFRESH_MS = 100;

const bucketOf = (deadline: number) => Math.ceil(deadline / 1000);

/**
 * Queued rows per model and priority, shared by every replica through one Redis hash.
 *
 * Each field is `model|priority|deadline second`. Producers add rows with HINCRBY in front of the job write,
 * processors subtract them when they take a job, and a field whose second has passed counts for nothing and
 * is deleted: its rows are past their deadline, so they will be skipped unrun anyway. Any drift (a write that
 * failed after its count, a replica killed between taking a job and reporting it) therefore lives at most
 * as long as the longest deadline, BATCHER_TIMEOUT_S.
 */
export class QueueDepth {
  private shared = new Map<string, DepthByPriority>();
  /** Rows this replica counted (or gave back, negative) since the last read was sent: not in `shared` yet. */
  private sinceRead = new Map<string, number>();
  /** Rows counted between sending the current read and its reply. */
  private duringRead = new Map<string, number>();
  /** Rows this replica's processor took, not yet subtracted in Redis: field -> rows. */
  private taken = new Map<string, number>();
  private reading = false;

  constructor(private readonly key: string) {}

  /** Rows queued for a model across replicas, as of the last read plus what this replica added since. */
  total(modelId: string): number {
    let n = (this.sinceRead.get(modelId) ?? 0) + (this.duringRead.get(modelId) ?? 0);
    for (const rows of Object.values(this.shared.get(modelId) ?? {})) n += rows;
    for (const [field, rows] of this.taken) if (field.startsWith(`${modelId}|`)) n -= rows;
    return Math.max(0, n);
  }

  /** Per model and priority, as of the last read (refreshed every DEPTH_REFRESH_MS). */
  snapshot(): Record<string, DepthByPriority> {
    return Object.fromEntries([...this.shared].map(([model, byPriority]) => [model, { ...byPriority }]));
  }

  /** Counts rows accepted by this replica at once, before they are written, so a burst in one tick is bounded too. */
  accept(modelId: string): void {
    this.sinceRead.set(modelId, (this.sinceRead.get(modelId) ?? 0) + 1);
  }

  /**
   * Sends the increments for rows about to be written, on the connection that writes the job and before it, so a
   * processor can never subtract rows before they were added. Plain commands rather than a pipeline: an ioredis
   * pipeline copies every Lua script the connection knows (BullMQ's 52) onto itself, about 25 µs and 12 KB of garbage
   * per job write (measured: a tenth of all allocation at 1,000 req/s).
   */
  add(client: Redis, modelId: string, priority: number, deadlines: number[]): Promise<unknown> {
    return this.send(client, modelId, priority, deadlines, 1);
  }

  /**
   * Gives back rows that were counted but never written (the write failed) or were removed before running. They
   * leave this replica's own count at once, as accepted rows enter it, rather than at the next read.
   */
  subtract(client: Redis, modelId: string, priority: number, deadlines: number[]): Promise<unknown> {
    this.sinceRead.set(modelId, (this.sinceRead.get(modelId) ?? 0) - deadlines.length);
    return this.send(client, modelId, priority, deadlines, -1);
  }

  private send(client: Redis, modelId: string, priority: number, deadlines: number[], sign: 1 | -1): Promise<unknown> {
    const sent: Promise<number>[] = [];
    for (const [field, n] of this.fields(modelId, priority, deadlines)) sent.push(client.hincrby(this.key, field, sign * n));
    return Promise.all(sent);
  }

  /** Records rows the processor took; they are subtracted in Redis with the next read, not one call per job. */
  took(modelId: string, priority: number, deadlines: number[]): void {
    for (const [field, n] of this.fields(modelId, priority, deadlines)) this.taken.set(field, (this.taken.get(field) ?? 0) + n);
  }

  /**
   * One round trip: reports what this replica's processor took, drops expired fields, reads the rest.
   * Skipped while a read is still out, so an outage never piles up commands.
   */
  async refresh(client: Redis, now: number): Promise<void> {
    if (this.reading || client.status !== 'ready') return;
    this.reading = true;
    const taken = this.taken;
    this.taken = new Map();
    this.duringRead = this.sinceRead;
    this.sinceRead = new Map();
    try {
      const multi = client.multi();
      for (const [field, n] of taken) multi.hincrby(this.key, field, -n);
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
      if (expired.length) await client.hdel(this.key, ...expired);
    } catch {
      // Not subtracted this time: keep it for the next read.
      for (const [field, n] of taken) this.taken.set(field, (this.taken.get(field) ?? 0) + n);
    } finally {
      this.duringRead = new Map();
      this.reading = false;
    }
  }

  private fields(modelId: string, priority: number, deadlines: number[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const d of deadlines) {
      const field = `${modelId}|${priority}|${bucketOf(d)}`;
      out.set(field, (out.get(field) ?? 0) + 1);
    }
    return out;
  }
}
