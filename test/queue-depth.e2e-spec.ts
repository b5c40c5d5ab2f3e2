import IORedis, { Redis } from 'ioredis';
import type { BalesConfig } from '@bales/config';
import { TestRedis } from '../../../test/support/redis-server';
import type { QueueConnection } from './queue-connection';
import { QueueDepth } from './queue-depth';

describe('QueueDepth (real Redis)', () => {
  let server: TestRedis;
  let client: Redis;
  const now = () => Date.now();
  /** A replica's depth, on the hash `${prefix}:depth`. */
  const depthOf = (prefix: string) => new QueueDepth({ QUEUE_PREFIX: prefix } as BalesConfig, { client } as QueueConnection);

  beforeAll(async () => {
    server = await TestRedis.start();
    client = new IORedis(server.url);
    // A read is skipped until the connection is ready.
    await client.ping();
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('shares counts between replicas per model and priority, and subtracts what a processor took', async () => {
    const [a, b] = [depthOf('t1'), depthOf('t1')];
    a.addWritten('m', 1, [now() + 5000, now() + 5000]);
    a.addWritten('m', 3, [now() + 5000]);
    await a.refresh(now());
    await b.refresh(now());
    expect(b.snapshot()).toEqual({ m: { 1: 2, 3: 1 } });
    expect(b.total('m')).toBe(3);

    b.removeTaken('m', 1, [now() + 5000]);
    // Counted locally at once, reported to Redis with the next read.
    expect(b.total('m')).toBe(2);
    await b.refresh(now());
    await a.refresh(now());
    expect(a.snapshot()).toEqual({ m: { 1: 1, 3: 1 } });
  });

  it('counts rows accepted here before the next read, so a burst between reads is bounded too', async () => {
    const depth = depthOf('t2');
    depth.addAccepted('m');
    depth.addAccepted('m');
    expect(depth.total('m')).toBe(2);
    await depth.refresh(now());
    // Nothing was written for them (say the clients left first): the read replaces the local guess.
    expect(depth.total('m')).toBe(0);
  });

  it('forgets counts whose deadline second has passed, so a count gone wrong heals within the longest deadline', async () => {
    const depth = depthOf('t3');
    // A replica counted rows and died before writing the job: nothing will ever subtract them.
    depth.addWritten('m', 2, [now() + 1000]);
    await depth.refresh(now());
    expect(depth.total('m')).toBe(1);
    await depth.refresh(now() + 3000);
    expect(depth.total('m')).toBe(0);
    expect(await client.hlen('t3:depth')).toBe(0);
  });

  it('never lets a negative count (a job subtracted twice) make room beyond the bound', async () => {
    const depth = depthOf('t4');
    depth.addWritten('m', 1, [now() + 5000]);
    depth.addWritten('m', 2, [now() + 5000]);
    depth.removeUnrun('m', 1, [now() + 5000, now() + 5000, now() + 5000]);
    await depth.refresh(now());
    expect(depth.snapshot()).toEqual({ m: { 1: 0, 2: 1 } });
  });

  it('takes rows given back off its own count at once, and the next read does not count them twice', async () => {
    const depth = depthOf('t5');
    for (let i = 0; i < 3; i++) depth.addAccepted('m');
    depth.addWritten('m', 2, [now() + 5000, now() + 5000, now() + 5000]);
    await depth.refresh(now());
    expect(depth.total('m')).toBe(3);
    // Two rows removed unrun (their clients gave up): room is back before the next read.
    depth.removeUnrun('m', 2, [now() + 5000, now() + 5000]);
    expect(depth.total('m')).toBe(1);
    await depth.refresh(now());
    expect(depth.total('m')).toBe(1);
  });

  it('sends nothing per job: what it wrote and took since the last read goes with the next read, one count per field', async () => {
    const depth = depthOf('t6');
    const deadline = now() + 5000;
    for (let i = 0; i < 10; i++) depth.addWritten('m', 2, [deadline]);
    depth.removeTaken('m', 2, [deadline, deadline, deadline]);
    expect(await client.exists('t6:depth')).toBe(0);
    await depth.refresh(now());
    expect(await client.hgetall('t6:depth')).toEqual({ [`m|2|${Math.ceil(deadline / 1000)}`]: '7' });
    // Written and taken here between two reads: nothing to report at all.
    depth.addWritten('m', 2, [deadline]);
    depth.removeTaken('m', 2, [deadline]);
    await depth.refresh(now());
    expect(await client.hgetall('t6:depth')).toEqual({ [`m|2|${Math.ceil(deadline / 1000)}`]: '7' });
  });

  it('counts each row of a job under its own deadline second, the job spanning several', async () => {
    const depth = depthOf('t10');
    const second = Math.ceil((now() + 5000) / 1000);
    const at = (s: number) => s * 1000 - 500;
    depth.addWritten('m', 1, [at(second), at(second), at(second + 1), at(second), at(second + 2), at(second + 2)]);
    depth.removeTaken('m', 1, [at(second + 2), at(second)]);
    await depth.refresh(now());
    expect(await client.hgetall('t10:depth')).toEqual({ [`m|1|${second}`]: '2', [`m|1|${second + 1}`]: '1', [`m|1|${second + 2}`]: '1' });
    expect(depth.total('m')).toBe(4);
  });

  it('reads rows taken by one replica before their writer reported them as none, and right once it has', async () => {
    const [writer, taker] = [depthOf('t7'), depthOf('t7')];
    const deadline = now() + 5000;
    writer.addWritten('m', 1, [deadline, deadline]);
    taker.removeTaken('m', 1, [deadline]);
    await taker.refresh(now());
    expect(taker.snapshot()).toEqual({ m: { 1: 0 } });
    await writer.refresh(now());
    expect(writer.snapshot()).toEqual({ m: { 1: 1 } });
  });

  it('keeps what a failed read could not report for the next one', async () => {
    const depth = depthOf('t8');
    const deadline = now() + 5000;
    // The key holds a string: HINCRBY and HGETALL both fail (WRONGTYPE), as a read cut off would.
    await client.set('t8:depth', 'x');
    depth.addWritten('m', 3, [deadline, deadline]);
    depth.removeTaken('m', 3, [deadline]);
    await depth.refresh(now());
    await client.del('t8:depth');
    await depth.refresh(now());
    expect(depth.snapshot()).toEqual({ m: { 3: 1 } });
  });

  it('keeps rows taken off the total, per model, through a failed read, until a read reports them', async () => {
    const depth = depthOf('t9');
    const deadline = now() + 5000;
    depth.addWritten('m', 1, [deadline, deadline, deadline]);
    depth.addWritten('m2', 1, [deadline]);
    await depth.refresh(now());
    expect([depth.total('m'), depth.total('m2')]).toEqual([3, 1]);
    depth.removeTaken('m', 1, [deadline]);
    depth.removeTaken('m2', 1, [deadline]);
    expect([depth.total('m'), depth.total('m2')]).toEqual([2, 0]);
    // The read fails (WRONGTYPE): the last shared counts stay, and so do the rows taken since.
    await client.rename('t9:depth', 't9:saved');
    await client.set('t9:depth', 'x');
    await depth.refresh(now());
    expect([depth.total('m'), depth.total('m2')]).toEqual([2, 0]);
    await client.del('t9:depth');
    await client.rename('t9:saved', 't9:depth');
    await depth.refresh(now());
    expect([depth.total('m'), depth.total('m2')]).toEqual([2, 0]);
    expect(depth.snapshot()).toEqual({ m: { 1: 2 }, m2: { 1: 0 } });
  });
});
