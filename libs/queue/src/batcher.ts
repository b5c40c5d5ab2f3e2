/** Anything the batcher can group: it only needs to know how urgent an item is. 1 is most urgent. */
export interface Prioritized {
  priority: number;
}

export interface BatcherOptions<T> {
  /** Longest an item waits for its batch to fill while every slot is busy. */
  windowMs: number;
  /** Batches that may run at once (one per worker thread); past it, items accumulate. */
  slots: number;
  /** Runs one batch. It must settle every item itself; the batcher only waits for it to finish. */
  run: (key: string, items: T[]) => Promise<void>;
  now?: () => number;
}

interface Waiting<T> {
  item: T;
  arrivedAt: number;
}

class Lane<T extends Prioritized> {
  /** One FIFO per priority level, most urgent first. */
  readonly levels = new Map<number, Waiting<T>[]>();
  size = 0;

  constructor(
    readonly key: string,
    readonly maxBatchSize: number,
  ) {}

  push(item: T, arrivedAt: number): void {
    let fifo = this.levels.get(item.priority);
    if (!fifo) {
      fifo = [];
      this.levels.set(item.priority, fifo);
    }
    fifo.push({ item, arrivedAt });
    this.size++;
  }

  /** The most urgent waiting item: its priority and arrival, for choosing between lanes. */
  head(): Waiting<T> | undefined {
    let best: Waiting<T> | undefined;
    for (const fifo of this.levels.values()) {
      const first = fifo[0];
      if (first && (!best || first.item.priority < best.item.priority)) best = first;
    }
    return best;
  }

  oldestArrival(): number {
    let oldest = Infinity;
    for (const fifo of this.levels.values()) if (fifo.length) oldest = Math.min(oldest, fifo[0].arrivedAt);
    return oldest;
  }

  /** Up to maxBatchSize items, most urgent first, FIFO within a priority. */
  take(): T[] {
    const batch: T[] = [];
    const priorities = [...this.levels.keys()].sort((a, b) => a - b);
    for (const p of priorities) {
      const fifo = this.levels.get(p)!;
      const n = Math.min(fifo.length, this.maxBatchSize - batch.length);
      for (const w of fifo.splice(0, n)) batch.push(w.item);
      if (fifo.length === 0) this.levels.delete(p);
      if (batch.length === this.maxBatchSize) break;
    }
    this.size -= batch.length;
    return batch;
  }
}

/**
 * Groups items into batches per key (a model, or a model and input shape), adapting to load:
 * - a free slot takes what is waiting at once, so light traffic pays no window;
 * - while every slot is busy, items accumulate until a batch is full or the oldest has waited windowMs,
 *   and then the batch is sent anyway, to queue behind a running one;
 * - the most urgent item waiting anywhere goes first; within a key, batches are filled by priority.
 */
export class DynamicBatcher<T extends Prioritized> {
  private readonly lanes = new Map<string, Lane<T>>();
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly now: () => number;

  constructor(private readonly options: BatcherOptions<T>) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Items waiting for a batch, across keys. */
  get waiting(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.size;
    return n;
  }

  /** Batches started and not finished. */
  get inFlight(): number {
    return this.running;
  }

  add(key: string, maxBatchSize: number, items: T[]): void {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = new Lane<T>(key, maxBatchSize);
      this.lanes.set(key, lane);
    }
    const now = this.now();
    for (const item of items) lane.push(item, now);
    this.pump();
    while (lane.size >= lane.maxBatchSize) this.start(lane);
    this.armTimer();
  }

  /** Fills free slots with the most urgent work waiting. */
  private pump(): void {
    while (this.running < this.options.slots) {
      let best: Lane<T> | undefined;
      let bestHead: Waiting<T> | undefined;
      for (const lane of this.lanes.values()) {
        const head = lane.head();
        if (!head) continue;
        if (!bestHead || head.item.priority < bestHead.item.priority || (head.item.priority === bestHead.item.priority && head.arrivedAt < bestHead.arrivedAt)) {
          best = lane;
          bestHead = head;
        }
      }
      if (!best) return;
      this.start(best);
    }
  }

  private start(lane: Lane<T>): void {
    const batch = lane.take();
    if (lane.size === 0) this.lanes.delete(lane.key);
    if (batch.length === 0) return;
    this.running++;
    this.options
      .run(lane.key, batch)
      .catch(() => undefined)
      .finally(() => {
        this.running--;
        this.pump();
        this.armTimer();
      });
  }

  /** Arms one timer for the oldest waiting item's window; on expiry its lane is sent even without a free slot. */
  private armTimer(): void {
    let oldest = Infinity;
    for (const lane of this.lanes.values()) oldest = Math.min(oldest, lane.oldestArrival());
    if (oldest === Infinity) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
      return;
    }
    const due = oldest + this.options.windowMs;
    if (this.timer && this.timerAt <= due) return;
    clearTimeout(this.timer);
    this.timerAt = due;
    // setTimeout truncates fractions; rounding up keeps it from waking just before the window ends.
    this.timer = setTimeout(() => this.onWindow(), Math.max(0, Math.ceil(due - this.now()))).unref();
  }

  private onWindow(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    for (const lane of [...this.lanes.values()]) {
      while (lane.size > 0 && lane.oldestArrival() + this.options.windowMs <= now) this.start(lane);
    }
    this.armTimer();
  }
}
