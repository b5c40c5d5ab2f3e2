/** Most bytes of rows kept for this replica's own consumer; past it, jobs' bytes are read back from Redis. */
export const LOCAL_ROW_BYTES_MAX = 64 * 1024 * 1024;

interface Kept {
  parts: Buffer[];
  bytes: number;
  /** Epoch ms after which no row of the job can still run. */
  until: number;
}

/**
 * The row bytes of jobs this replica wrote to Redis, kept in memory until its own consumer takes the job: the
 * replica that took the request then reads nothing back, no `GET` and no image-sized reply buffer a row. Redis
 * still holds them for any other replica. Bounded in bytes: past the bound the oldest go, and entries past their
 * rows' deadline go; a job whose bytes are gone from here is read from Redis as another replica would read it.
 */
export class LocalRowBytes {
  private readonly kept = new Map<string, Kept>();
  private bytes = 0;
  private enabled = false;

  constructor(private readonly maxBytes = LOCAL_ROW_BYTES_MAX) {}

  /** Called by the consumer when it starts: a replica that runs no processor keeps nothing. */
  enable(): void {
    this.enabled = true;
  }

  /** Bytes held now. */
  get size(): number {
    return this.bytes;
  }

  keep(key: string, parts: Buffer[], until: number, now: number): void {
    if (!this.enabled) return;
    let bytes = 0;
    for (const p of parts) bytes += p.byteLength;
    if (bytes > this.maxBytes) return;
    // Insertion order is nearly deadline order: the oldest entries are the first to expire and the first to go.
    for (const [k, e] of this.kept) {
      if (e.until > now && this.bytes + bytes <= this.maxBytes) break;
      this.drop(k);
    }
    this.kept.set(key, { parts, bytes, until });
    this.bytes += bytes;
  }

  /** The parts kept under `key`, once: they leave with this call. */
  take(key: string): Buffer[] | undefined {
    const e = this.kept.get(key);
    if (!e) return undefined;
    this.drop(key);
    return e.parts;
  }

  drop(key: string): void {
    const e = this.kept.get(key);
    if (!e) return;
    this.kept.delete(key);
    this.bytes -= e.bytes;
  }
}
