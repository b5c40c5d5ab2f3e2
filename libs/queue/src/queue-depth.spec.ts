import type { Redis } from 'ioredis';
import type { BalesConfig } from '@bales/config';
import { epochNow } from './clock';
import type { QueueConnection } from './queue-connection';
import { DEPTH_REFRESH_MS, QueueDepth } from './queue-depth';

/** The one Redis hash the depth lives in, with the calls QueueDepth makes on it, as ioredis answers them. */
class FakeRedis {
  status = 'ready';
  readonly hash = new Map<string, number>();
  /** Commands sent, one entry per round trip. */
  readonly sent: string[][] = [];
  /** The next MULTI fails as a lost connection or a WRONGTYPE would. */
  failNext = false;
  /** Holds the next MULTI's reply until released. */
  hold?: Promise<void>;

  multi() {
    const commands: string[] = [];
    const replies: (() => unknown)[] = [];
    const multi = {
      hincrby: (_key: string, field: string, n: number) => {
        commands.push(`HINCRBY ${field} ${n}`);
        replies.push(() => this.hash.set(field, (this.hash.get(field) ?? 0) + n).get(field));
        return multi;
      },
      hgetall: () => {
        commands.push('HGETALL');
        replies.push(() => Object.fromEntries([...this.hash].map(([f, n]) => [f, String(n)])));
        return multi;
      },
      exec: async () => {
        this.sent.push(commands);
        await this.hold;
        if (this.failNext) {
          this.failNext = false;
          return replies.map(() => [new Error('WRONGTYPE'), null]);
        }
        return replies.map((reply) => [null, reply()]);
      },
    };
    return multi;
  }

  async hdel(_key: string, ...fields: string[]) {
    for (const f of fields) this.hash.delete(f);
    return fields.length;
  }
}

function setup() {
  const redis = new FakeRedis();
  const connection = { client: redis as unknown as Redis };
  const depth = new QueueDepth({ QUEUE_PREFIX: 'bales' } as BalesConfig, connection as unknown as QueueConnection);
  return { redis, depth };
}

const soon = () => epochNow() + 5000;
const field = (model: string, priority: number, deadline: number) => `${model}|${priority}|${Math.ceil(deadline / 1000)}`;

describe('QueueDepth', () => {
  afterEach(() => jest.useRealTimers());

  it('counts a request at once when it is accepted, so a burst between two reads is bounded too', async () => {
    const { depth } = setup();
    depth.addAccepted('m');
    depth.addAccepted('m');
    expect(depth.total('m')).toBe(2);
    expect(depth.total('other')).toBe(0);
    // Nothing was written for them (say the clients left first): the read replaces the local guess.
    await depth.refresh(epochNow());
    expect(depth.total('m')).toBe(0);
  });

  it('reports what it wrote and what the consumer took as one net count per field with the next read, nothing per job', async () => {
    const { depth, redis } = setup();
    const deadline = soon();
    for (let i = 0; i < 10; i++) depth.addWritten('m', 2, [deadline]);
    depth.removeTaken('m', 2, [deadline, deadline, deadline]);
    expect(redis.sent).toEqual([]);
    await depth.refresh(epochNow());
    expect(redis.sent).toEqual([[`HINCRBY ${field('m', 2, deadline)} 7`, 'HGETALL']]);
    expect(depth.snapshot()).toEqual({ m: { 2: 7 } });
  });

  it('takes rows the consumer took off the total at once, before the read reports them', async () => {
    const { depth } = setup();
    const deadline = soon();
    depth.addWritten('m', 1, [deadline, deadline, deadline]);
    await depth.refresh(epochNow());
    depth.removeTaken('m', 1, [deadline]);
    expect(depth.total('m')).toBe(2);
    await depth.refresh(epochNow());
    expect(depth.total('m')).toBe(2);
  });

  it('gives rows back to its own count at once, and the next read does not count them twice', async () => {
    const { depth } = setup();
    for (let i = 0; i < 3; i++) depth.addAccepted('m');
    depth.addWritten('m', 2, [soon(), soon(), soon()]);
    await depth.refresh(epochNow());
    expect(depth.total('m')).toBe(3);
    // Two rows removed unrun (their clients gave up): room is back before the next read.
    depth.removeUnrun('m', 2, [soon(), soon()]);
    expect(depth.total('m')).toBe(1);
    await depth.refresh(epochNow());
    expect(depth.total('m')).toBe(1);
  });

  it('never lets a negative count make room beyond the bound', async () => {
    const { depth } = setup();
    depth.addWritten('m', 1, [soon()]);
    depth.addWritten('m', 2, [soon()]);
    depth.removeUnrun('m', 1, [soon(), soon(), soon()]);
    await depth.refresh(epochNow());
    expect(depth.snapshot()).toEqual({ m: { 1: 0, 2: 1 } });
    expect(depth.total('m')).toBe(1);
  });

  it('keeps the last counts and what it could not report through a failed read, and reports it with the next', async () => {
    const { depth, redis } = setup();
    const deadline = soon();
    depth.addWritten('m', 1, [deadline, deadline, deadline]);
    depth.addWritten('m2', 1, [deadline]);
    await depth.refresh(epochNow());
    depth.removeTaken('m', 1, [deadline]);
    depth.removeTaken('m2', 1, [deadline]);
    redis.failNext = true;
    await depth.refresh(epochNow());
    expect([depth.total('m'), depth.total('m2')]).toEqual([2, 0]);
    expect(depth.snapshot()).toEqual({ m: { 1: 3 }, m2: { 1: 1 } });
    await depth.refresh(epochNow());
    expect([depth.total('m'), depth.total('m2')]).toEqual([2, 0]);
    expect(depth.snapshot()).toEqual({ m: { 1: 2 }, m2: { 1: 0 } });
  });

  it('sends nothing while Redis is unreachable, and sends one read at a time', async () => {
    const { depth, redis } = setup();
    redis.status = 'reconnecting';
    await depth.refresh(epochNow());
    expect(redis.sent).toEqual([]);
    redis.status = 'ready';
    let release!: () => void;
    redis.hold = new Promise((r) => (release = r));
    const first = depth.refresh(epochNow());
    await depth.refresh(epochNow());
    expect(redis.sent).toHaveLength(1);
    release();
    await first;
  });

  it('reads on its own timer, after the producer wrote the rows it gathered, until shutdown', async () => {
    jest.useFakeTimers({ doNotFake: ['performance'] });
    const { depth, redis } = setup();
    const order: string[] = [];
    depth.beforeEachRead(() => order.push('write gathered rows'));
    const read = jest.spyOn(depth, 'refresh').mockImplementation(async () => void order.push('read'));
    depth.onModuleInit();
    jest.advanceTimersByTime(DEPTH_REFRESH_MS - 1);
    expect(order).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(order).toEqual(['write gathered rows', 'read']);
    depth.beforeApplicationShutdown();
    jest.advanceTimersByTime(10 * DEPTH_REFRESH_MS);
    expect(read).toHaveBeenCalledTimes(1);
    expect(redis.sent).toEqual([]);
  });
});
