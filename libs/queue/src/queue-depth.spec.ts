import IORedis, { Redis } from 'ioredis';
import { TestRedis } from '../../../test/support/redis-server';
import { QueueDepth } from './queue-depth';

describe('QueueDepth (real Redis)', () => {
  let server: TestRedis;
  let client: Redis;
  const now = () => Date.now();

  beforeAll(async () => {
    server = await TestRedis.start();
    client = new IORedis(server.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('shares counts between replicas per model and priority, and subtracts what a processor took', async () => {
    const [a, b] = [new QueueDepth('t1:depth'), new QueueDepth('t1:depth')];
    await a.add(client, 'm', 1, [now() + 5000, now() + 5000]);
    await a.add(client, 'm', 3, [now() + 5000]);
    await b.refresh(client, now());
    expect(b.snapshot()).toEqual({ m: { 1: 2, 3: 1 } });
    expect(b.total('m')).toBe(3);

    b.took('m', 1, [now() + 5000]);
    // Counted locally at once, reported to Redis with the next read.
    expect(b.total('m')).toBe(2);
    await b.refresh(client, now());
    await a.refresh(client, now());
    expect(a.snapshot()).toEqual({ m: { 1: 1, 3: 1 } });
  });

  it('counts rows accepted here before the next read, so a burst between reads is bounded too', async () => {
    const depth = new QueueDepth('t2:depth');
    depth.accept('m');
    depth.accept('m');
    expect(depth.total('m')).toBe(2);
    await depth.refresh(client, now());
    // Nothing was written for them (say the clients left first): the read replaces the local guess.
    expect(depth.total('m')).toBe(0);
  });

  it('forgets counts whose deadline second has passed, so a count gone wrong heals within the longest deadline', async () => {
    const depth = new QueueDepth('t3:depth');
    // A replica counted rows and died before writing the job: nothing will ever subtract them.
    await depth.add(client, 'm', 2, [now() + 1000]);
    await depth.refresh(client, now());
    expect(depth.total('m')).toBe(1);
    await depth.refresh(client, now() + 3000);
    expect(depth.total('m')).toBe(0);
    expect(await client.hlen('t3:depth')).toBe(0);
  });

  it('never lets a negative count (a job subtracted twice) make room beyond the bound', async () => {
    const depth = new QueueDepth('t4:depth');
    await Promise.all([depth.add(client, 'm', 1, [now() + 5000]), depth.add(client, 'm', 2, [now() + 5000])]);
    await depth.subtract(client, 'm', 1, [now() + 5000, now() + 5000, now() + 5000]);
    await depth.refresh(client, now());
    expect(depth.snapshot()).toEqual({ m: { 1: 0, 2: 1 } });
  });

  it('takes rows given back off its own count at once, and the next read does not count them twice', async () => {
    const depth = new QueueDepth('t5:depth');
    for (let i = 0; i < 3; i++) depth.accept('m');
    await depth.add(client, 'm', 2, [now() + 5000, now() + 5000, now() + 5000]);
    await depth.refresh(client, now());
    expect(depth.total('m')).toBe(3);
    // Two rows removed unrun (their clients gave up): room is back before the next read.
    await depth.subtract(client, 'm', 2, [now() + 5000, now() + 5000]);
    expect(depth.total('m')).toBe(1);
    await depth.refresh(client, now());
    expect(depth.total('m')).toBe(1);
  });
});
