/** Anything the batcher can group: it only needs to know how urgent an item is. 1 is most urgent. */
export interface Prioritized {
  priority: number;
}

export interface BatcherOptions<T> {
  /** Longest an item waits for its batch to fill while every slot is busy. */
  windowMs: number;
  /**
   * Batches that may run at once (one per worker thread). As many again may wait behind them, so a worker never
   * idles between batches; past that, items stay here, where a more urgent one overtakes them.
   */
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
 *   and then the batch is sent anyway, to queue behind a running one, but never more than one per slot:
 *   batches handed over leave the priority order, so the rest stay here;
 * - the most urgent item waiting anywhere goes first; within a key, batches are filled by priority.
 */
export class DynamicBatcher<T extends Prioritized> {
  private readonly lanes = new Map<string, Lane<T>>();
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly now: () => number;
  /** Worker-thread ms of batches up to `busySince`; a batch handed over beyond the slots waits, so it is not counted. */
  private busyUntilLastChange = 0;
  private busySince: number;

  constructor(private readonly options: BatcherOptions<T>) {
    this.now = options.now ?? (() => performance.now());
    this.busySince = this.now();
  }

  /** Worker-thread milliseconds spent running batches so far. */
  get busyMs(): number {
    return this.busyUntilLastChange + Math.min(this.running, this.options.slots) * (this.now() - this.busySince);
  }

  /** True when a worker thread has nothing to run and nothing waits here: an item added now starts at once. */
  get idle(): boolean {
    return this.running < this.options.slots && this.lanes.size === 0;
  }

  /** Items waiting for a batch, across keys. */
  get waiting(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.size;
    return n;
  }

  add(key: string, maxBatchSize: number, items: T[]): void {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = new Lane<T>(key, maxBatchSize);
      this.lanes.set(key, lane);
    }
    const now = this.now();
    for (const item of items) lane.push(item, now);
    this.fillFreeSlots();
    while (lane.size >= lane.maxBatchSize && this.canQueue) this.start(lane);
    this.armTimer();
  }

  /** Whether a batch may still be handed over while every slot is busy. */
  private get canQueue(): boolean {
    return this.running < 2 * this.options.slots;
  }

  /** Fills free slots with the most urgent work waiting. */
  private fillFreeSlots(): void {
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
    this.setRunning(1);
    this.options
      .run(lane.key, batch)
      .catch(() => undefined)
      .finally(() => {
        this.setRunning(-1);
        this.fillFreeSlots();
        this.sendDue();
        this.armTimer();
      });
  }

  private setRunning(change: number): void {
    this.busyUntilLastChange = this.busyMs;
    this.busySince = this.now();
    this.running += change;
  }

  /** Arms one timer for the oldest waiting item's window; on expiry its lane is sent even without a free slot. */
  private armTimer(): void {
    let oldest = Infinity;
    for (const lane of this.lanes.values()) oldest = Math.min(oldest, lane.oldestArrival());
    // With no queue place free, the next batch to finish sends what is due; a timer would only spin.
    if (oldest === Infinity || !this.canQueue) {
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
    this.sendDue();
    this.armTimer();
  }

  /** Hands over full batches and batches whose window ended, most urgent first, while a queue place is free. */
  private sendDue(): void {
    const now = this.now();
    while (this.canQueue) {
      let best: Lane<T> | undefined;
      let bestHead: Waiting<T> | undefined;
      for (const lane of this.lanes.values()) {
        const head = lane.head();
        if (!head || (lane.size < lane.maxBatchSize && lane.oldestArrival() + this.options.windowMs > now)) continue;
        if (!bestHead || head.item.priority < bestHead.item.priority || (head.item.priority === bestHead.item.priority && head.arrivedAt < bestHead.arrivedAt)) {
          best = lane;
          bestHead = head;
        }
      }
      if (!best) return;
      this.start(best);
    }
  }
}
