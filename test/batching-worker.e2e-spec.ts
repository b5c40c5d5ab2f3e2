import { Job, Queue } from 'bullmq';
import IORedis from 'ioredis';
import { BatchingWorker } from '@bales/queue';
import { TestRedis } from './support/redis-server';

/** The BullMQ worker behind the consumer, against a real Redis, with a processor each test controls. */
describe('BatchingWorker', () => {
  let redis: TestRedis;
  let queue: Queue;
  let worker: BatchingWorker | undefined;
  const connection = () => ({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null });

  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(() => redis?.stop());

  beforeEach(async () => {
    queue = new Queue(`q${Date.now()}`, { connection: connection() });
    await queue.waitUntilReady();
  });
  afterEach(async () => {
    await worker?.close();
    worker = undefined;
    await queue.close();
  });

  const start = (process: (job: Job) => Promise<void>, jobsWanted: () => number, drainDelay?: number) => {
    worker = new BatchingWorker(queue.name, process, { connection: connection(), lockDuration: 3000, stalledInterval: 1000, ...(drainDelay && { drainDelay }) }, jobsWanted);
    worker.on('error', () => undefined);
    void worker.run();
    return worker;
  };
  const until = async (check: () => boolean, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(check()).toBe(true);
  };

  it('says it waits on an empty queue once the queue answered empty, not after it brought a job, whatever is in hand', async () => {
    let finish: () => void = () => undefined;
    let held = 0;
    let wanted = 1;
    const w = start(
      () => {
        held++;
        return new Promise<void>((resolve) => (finish = resolve));
      },
      () => wanted,
    );
    expect(w.waitingOnEmptyQueue).toBe(false);
    await until(() => w.waitingOnEmptyQueue);
    wanted = 0;
    await queue.add('j', {});
    await until(() => held === 1);
    // The blocking fetch brought a job and no fetch went out since: the queue is not known to be empty.
    expect(w.waitingOnEmptyQueue).toBe(false);
    wanted = 1;
    w.startFetches();
    // The next fetch finds it empty. The job in hand does not matter: its rows are in the batcher already.
    await until(() => w.waitingOnEmptyQueue);
    expect(held).toBe(1);
    finish();
  });

  it('stops saying the queue is empty once no fetch watches it, until one answers again', async () => {
    let wanted = 1;
    // The blocking fetch gives up after 0.1 s with no job, as it does after 5 s in the gateway.
    const w = start(async () => undefined, () => wanted, 0.1);
    await until(() => w.waitingOnEmptyQueue);
    // Wanting no more jobs, the worker sends no fetch after the blocking one gives up: jobs written then go unseen.
    wanted = 0;
    await until(() => !w.waitingOnEmptyQueue);
    wanted = 1;
    w.startFetches();
    await until(() => w.waitingOnEmptyQueue);
  });

  it('hands each job to the processor as its fetch returns, not after a run of fetches', async () => {
    await queue.addBulk(Array.from({ length: 40 }, (_, i) => ({ name: 'j', data: { i } })));
    let fetched = 0;
    const fetchedWhenProcessed: number[] = [];
    const w = start(async () => {
      fetchedWhenProcessed.push(fetched);
    }, () => 40);
    w.on('active', () => fetched++);
    await until(() => fetchedWhenProcessed.length === 40);
    // BullMQ's own loop fetches all 40 (its concurrency) one round trip at a time before the first one runs.
    expect(fetchedWhenProcessed[0]).toBe(1);
  });

  it('fetches a backlog side by side, the window doubling while jobs keep coming, then waits with one fetch', async () => {
    await queue.addBulk(Array.from({ length: 63 }, (_, i) => ({ name: 'j', data: { i } })));
    let done = 0;
    const w = new BatchingWorker(queue.name, async () => void done++, { connection: connection() }, () => 64);
    worker = w;
    let inFlight = 0;
    let mostInFlight = 0;
    const getNextJob = w.getNextJob.bind(w);
    w.getNextJob = (token, opts) => {
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      return getNextJob(token, opts).finally(() => inFlight--);
    };
    void w.run();
    await until(() => done === 63);
    // Rounds of 1, 2, 4, 8, 16 and 32 fetches sent together: 63 jobs in six round trips rather than 63.
    expect(mostInFlight).toBeGreaterThanOrEqual(16);
    expect(mostInFlight).toBeLessThanOrEqual(64);
    // The queue empty, one fetch waits on the marker instead of many polling.
    await until(() => inFlight === 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(inFlight).toBe(1);
  });

  it('never holds more jobs than the consumer wants, and fetches more once it wants more', async () => {
    await queue.addBulk(Array.from({ length: 12 }, (_, i) => ({ name: 'j', data: { i } })));
    let held = 0;
    let mostHeld = 0;
    let finished = 0;
    const release: (() => void)[] = [];
    let wanted = 3;
    const w = start(
      (job) =>
        new Promise<void>((resolve) => {
          held++;
          mostHeld = Math.max(mostHeld, held);
          release.push(() => {
            held--;
            finished++;
            resolve();
          });
          void job;
        }),
      () => wanted - held,
    );
    await until(() => held === 3);
    await new Promise((r) => setTimeout(r, 200));
    expect(held).toBe(3);
    wanted = 5;
    w.startFetches();
    await until(() => held === 5);
    while (finished < 12) {
      await until(() => release.length > 0);
      release.shift()!();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(mostHeld).toBe(5);
  });

  it('keeps fetching after a completion fails (its lock was lost), with no fetch counted twice', async () => {
    const seen: number[] = [];
    const w = start(async (job) => {
      seen.push(job.data.i);
      if (job.data.i !== 0) return;
      // The lock gone, BullMQ cannot complete the job and fails it instead, asking again whether to fetch the next.
      const client = new IORedis(redis.port);
      await client.del(`bull:${queue.name}:${job.id}:lock`);
      client.disconnect();
    }, () => 2);
    const errors: string[] = [];
    w.on('error', (e) => errors.push(e.message));
    for (const i of [0, 1, 2]) {
      await queue.add('j', { i });
      await until(() => seen.length === i + 1);
      if (i === 0) await until(() => errors.some((m) => /lock/i.test(m)));
      // The queue empty again: the worker waits for the next job, which a fetch counted twice would stop it doing.
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toEqual([0, 1, 2]);
  });

  it('finishes a job fetched while close() is under way, though the consumer starts fetches before the job counts as held', async () => {
    let ran = false;
    const w = new BatchingWorker(
      queue.name,
      async () => {
        // As the real processor does when its batch starts, before BullMQ counts the job as held.
        w.startFetches();
        await new Promise((r) => setTimeout(r, 300));
        ran = true;
      },
      { connection: connection() },
      () => 1,
    );
    worker = w;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let returned = false;
    const getNextJob = w.getNextJob.bind(w);
    w.getNextJob = async (token, opts) => {
      const job = await getNextJob(token, opts);
      if (job) {
        returned = true;
        await gate;
      }
      return job;
    };
    void w.run();
    const job = await queue.add('j', { i: 0 });
    await until(() => returned);
    const closed = w.close();
    await new Promise((r) => setTimeout(r, 20));
    release();
    await closed;
    expect(ran).toBe(true);
    expect(await queue.getJobState(job.id!)).toBe('completed');
  });
});
