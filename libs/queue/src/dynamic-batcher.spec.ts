import { DynamicBatcher } from './dynamic-batcher';

interface Item {
  id: number;
  priority: number;
}

/** A batcher whose batches finish only when the test says so, recording what ran. */
function harness(opts: { slots: number; windowMs: number }) {
  const ran: { key: string; ids: number[] }[] = [];
  const finish: (() => void)[] = [];
  const batcher = new DynamicBatcher<Item>({
    ...opts,
    run: (key, items) => {
      ran.push({ key, ids: items.map((i) => i.id) });
      return new Promise<void>((resolve) => finish.push(resolve));
    },
  });
  return { batcher, ran, finish };
}

const items = (ids: number[], priority = 2): Item[] => ids.map((id) => ({ id, priority }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('DynamicBatcher', () => {
  it('dispatches at once when a slot is idle, without waiting for the window', () => {
    const { batcher, ran } = harness({ slots: 1, windowMs: 10_000 });
    batcher.add('m', 32, items([1]));
    expect(ran).toEqual([{ key: 'm', ids: [1] }]);
  });

  it('accumulates while every slot is busy and sends the batch when a slot frees', async () => {
    const { batcher, ran, finish } = harness({ slots: 1, windowMs: 10_000 });
    batcher.add('m', 32, items([1]));
    batcher.add('m', 32, items([2, 3]));
    batcher.add('m', 32, items([4]));
    expect(ran).toHaveLength(1);
    expect(batcher.waiting).toBe(3);
    finish[0]();
    await sleep(0);
    expect(ran[1]).toEqual({ key: 'm', ids: [2, 3, 4] });
  });

  it('never puts more than the batch size in a batch, and sends a full batch without waiting', () => {
    const { batcher, ran } = harness({ slots: 1, windowMs: 10_000 });
    batcher.add('m', 4, items([1]));
    batcher.add('m', 4, items([2, 3, 4, 5, 6, 7, 8, 9, 10]));
    // Slot busy with [1]; one full batch of 4 queues behind it, the rest wait here.
    expect(ran.map((r) => r.ids)).toEqual([[1], [2, 3, 4, 5]]);
    expect(batcher.waiting).toBe(5);
  });

  it('hands at most one batch per slot to the workers beyond those running, so later urgent items overtake the rest', async () => {
    const { batcher, ran, finish } = harness({ slots: 1, windowMs: 5 });
    batcher.add('m', 2, items([1, 2, 3, 4, 5, 6], 3));
    await sleep(30);
    expect(ran.map((r) => r.ids)).toEqual([[1, 2], [3, 4]]);
    batcher.add('m', 2, items([100], 1));
    finish[0]();
    await sleep(0);
    expect(ran[2]).toEqual({ key: 'm', ids: [100, 5] });
    expect(batcher.waiting).toBe(1);
  });

  it('sends a partial batch when its window ends even though every slot is busy', async () => {
    const { batcher, ran } = harness({ slots: 1, windowMs: 30 });
    batcher.add('m', 32, items([1]));
    batcher.add('m', 32, items([2]));
    await sleep(10);
    expect(ran).toHaveLength(1);
    await sleep(60);
    expect(ran.map((r) => r.ids)).toEqual([[1], [2]]);
    // Both places taken: a third waits for a batch to finish, however long its window has passed.
    batcher.add('m', 32, items([3]));
    await sleep(60);
    expect(ran).toHaveLength(2);
  });

  it('never mixes keys in one batch', async () => {
    const { batcher, ran, finish } = harness({ slots: 1, windowMs: 10_000 });
    batcher.add('a', 32, items([1]));
    batcher.add('a', 32, items([2]));
    batcher.add('b', 32, items([3]));
    batcher.add('a', 32, items([4]));
    finish[0]();
    await sleep(0);
    finish[1]();
    await sleep(0);
    expect(ran.map((r) => r.key)).toEqual(['a', 'a', 'b']);
    expect(ran[1].ids).toEqual([2, 4]);
    expect(ran[2].ids).toEqual([3]);
  });

  it('fills batches most urgent first, and serves the most urgent key first', async () => {
    const { batcher, ran, finish } = harness({ slots: 1, windowMs: 10_000 });
    batcher.add('a', 2, items([1], 3));
    batcher.add('a', 2, items([10], 3));
    batcher.add('b', 2, items([20], 3));
    batcher.add('a', 2, items([11], 1));
    finish[0]();
    await sleep(0);
    expect(ran[1]).toEqual({ key: 'a', ids: [11, 10] });
  });

  it('counts worker-thread time busy with batches, but not a batch that waits behind a running one', async () => {
    let now = 0;
    const finish: (() => void)[] = [];
    const batcher = new DynamicBatcher<Item>({ slots: 2, windowMs: 10_000, now: () => now, run: () => new Promise<void>((resolve) => finish.push(resolve)) });
    now = 10;
    expect(batcher.busyMs).toBe(0);
    batcher.add('m', 1, items([1]));
    now = 20;
    expect(batcher.busyMs).toBe(10);
    // Three batches handed over on two slots: two run, one waits.
    batcher.add('m', 1, items([2]));
    batcher.add('m', 1, items([3]));
    now = 30;
    expect(batcher.busyMs).toBe(10 + 2 * 10);
    finish[0]();
    finish[1]();
    finish[2]();
    await sleep(0);
    const idleFrom = batcher.busyMs;
    now = 100;
    expect(batcher.busyMs).toBe(idleFrom);
  });
});
