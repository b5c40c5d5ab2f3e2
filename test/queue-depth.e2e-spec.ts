import IORedis, { Redis } from 'ioredis';
import type { BalesConfig } from '@bales/config';
import { QueueConnection, QueueDepth } from '@bales/queue';
import { TestRedis } from './support/redis-server';

describe('QueueDepth against a real Redis', () => {
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
});
