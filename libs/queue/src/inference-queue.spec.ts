import type { Command } from 'ioredis';
import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from '@bales/model-registry';
import { AbandonedJobs } from './abandoned-jobs';
import { DirectDispatch } from './direct-dispatch';
import { InferenceQueue, InferSubmission } from './inference-queue';
import { InferJobData, versionQueue } from './job-codec';
import type { ModelQueues } from './model-queues';
import { InferOutcome, PendingRequests, ResultMessage } from './pending-requests';
import type { QueueConnection } from './queue-connection';
import { DEPTH_REFRESH_MS, QueueDepth } from './queue-depth';
import type { RedisConnections } from './redis-connections';
import type { ResultRouter } from './result-router';

const HERE = 'replica-a';
const ROW: EncodedRow = { buffers: [Buffer.alloc(512)], dims: [[128]] };

/**
 * BullMQ's queues as the producer uses them, one per model version, all recording into one log in the order jobs
 * are written: each add() waits until the test answers it.
 */
class FakeQueues {
  readonly added: { queue: string; data: InferJobData; priority: number; written: (id: string) => void; failed: (err: Error) => void }[] = [];
  /** Each removed job as `queue name/job id`. */
  readonly removed: string[] = [];
  /** What remove() answers: 1 removed, 0 when a worker holds the job. */
  removes = 1;
  /** The Redis client every queue shares. */
  client?: Promise<unknown>;

  /** ModelQueues.get: the handle of one model version's queue. */
  get(modelId: string, version: string) {
    const name = versionQueue(modelId, version);
    // Looked up at each call, so a test can wrap add() or set the client after the handle was taken.
    const queues = this;
    return {
      add: (job: string, data: InferJobData, opts: { priority: number }) => this.add(name, job, data, opts),
      remove: (id: string) => this.remove(name, id),
      get client() {
        return queues.client;
      },
    };
  }

  add(queue: string, _job: string, data: InferJobData, opts: { priority: number }): Promise<{ id: string }> {
    return new Promise((resolve, reject) => this.added.push({ queue, data, priority: opts.priority, written: (id) => resolve({ id }), failed: reject }));
  }

  async remove(queue: string, id: string): Promise<number> {
    this.removed.push(`${queue}/${id}`);
    return this.removes;
  }

  /** The request ids of each job written so far. */
  get jobs(): string[][] {
    return this.added.map((a) => a.data.r.map((r) => r[0]));
  }
}

function setup(env: Record<string, string> = {}) {
  const config = loadConfig({ MAX_QUEUE_DEPTH: '4', MAX_BATCH_SIZE: '2', ...env });
  const queue = new FakeQueues();
  const pending = new PendingRequests();
  const redis = { instanceId: HERE, logError: jest.fn() };
  const router = { cancel: jest.fn() };
  const connection = { connected: true, client: undefined };
  const depth = new QueueDepth(config, connection as unknown as QueueConnection);
  const abandoned = new AbandonedJobs(pending, depth, redis as unknown as RedisConnections);
  const direct = new DirectDispatch();
  const producer = new InferenceQueue(queue as unknown as ModelQueues, config, pending, redis as unknown as RedisConnections, router as unknown as ResultRouter, connection as unknown as QueueConnection, depth, abandoned, direct);
  /** Client-gone listeners, per request, for a test to call as the HTTP layer would. */
  const leave = new Map<string, () => void>();
  const submit = (requestId: string, extra: Partial<InferSubmission> = {}) =>
    settled(producer.submit({ requestId, modelId: 'stub_v1', version: '1', priority: 2, row: ROW, timeoutMs: 5000, onClientGone: (l) => leave.set(requestId, l), ...extra }));
  return { config, queue, pending, redis, router, connection, depth, direct, producer, submit, leave };
}

/** How a submission ended, once it has: its outcome or the error code it was refused with. */
function settled(p: Promise<InferOutcome>) {
  return p.then(
    (outcome) => ({ outcome }),
    (err: BalesError) => ({ code: err.code, message: err.message }),
  );
}

const result = (id: string): ResultMessage => ({ id, ok: true, model_id: 'stub_v1', model_version: '1', result: { values: [1] }, batch_size: 1, queued_ms: 0 });
const endOfTick = () => new Promise((r) => setImmediate(r));

describe('InferenceQueue', () => {
  // Deadline timers of requests a test leaves waiting end with it.
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['performance', 'setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => jest.useRealTimers());

  it('writes the requests of one model version and priority arriving in one tick as one job, naming this replica as their origin', async () => {
    const { queue, submit } = setup();
    void submit('a');
    void submit('b');
    expect(queue.added).toHaveLength(0);
    await endOfTick();
    expect(queue.jobs).toEqual([['a', 'b']]);
    expect(queue.added[0]).toMatchObject({ queue: 'infer/stub_v1/1', priority: 2, data: { m: 'stub_v1', v: '1', o: HERE } });
  });

  it("writes separate jobs per model, per version and per priority, each to its model version's queue, none bigger than MAX_BATCH_SIZE", async () => {
    const { queue, submit } = setup({ MAX_QUEUE_DEPTH: '100' });
    for (const id of ['a', 'b', 'c']) void submit(id);
    void submit('urgent', { priority: 1 });
    void submit('other', { modelId: 'other' });
    // Admitted under the next version, as after a reload's commit: it must not run on the version before.
    void submit('next', { version: '2' });
    await endOfTick();
    expect(queue.jobs).toEqual([['a', 'b'], ['c'], ['urgent'], ['other'], ['next']]);
    expect(queue.added.map((a) => [a.queue, a.data.m, a.data.v, a.priority])).toEqual([
      ['infer/stub_v1/1', 'stub_v1', '1', 2],
      ['infer/stub_v1/1', 'stub_v1', '1', 2],
      ['infer/stub_v1/1', 'stub_v1', '1', 1],
      ['infer/other/1', 'other', '1', 2],
      ['infer/stub_v1/2', 'stub_v1', '2', 2],
    ]);
  });

  it('resolves each request with its own result', async () => {
    const { pending, submit } = setup();
    const [a, b] = [submit('a'), submit('b')];
    pending.settle(result('b'));
    pending.settle(result('a'));
    expect(await a).toEqual({ outcome: result('a') });
    expect(await b).toEqual({ outcome: result('b') });
  });

  it('keeps one write in flight: requests arriving meanwhile share the next one', async () => {
    const { queue, submit } = setup();
    void submit('a');
    await endOfTick();
    void submit('b');
    await endOfTick();
    void submit('c');
    await endOfTick();
    expect(queue.jobs).toEqual([['a']]);
    queue.added[0].written('1');
    await endOfTick();
    expect(queue.jobs).toEqual([['a'], ['b', 'c']]);
  });

  it('settles a version\'s writes only once none of its accepted requests waits to be written, gathered or in flight, whatever other versions do', async () => {
    const { queue, submit, producer } = setup();
    void submit('a');
    let settled = false;
    void producer.writesSettled('stub_v1', '1').then(() => (settled = true));
    const poll = async () => {
      await endOfTick();
      jest.advanceTimersByTime(5);
      await endOfTick();
    };
    await endOfTick();
    void submit('b');
    await poll();
    expect(settled).toBe(false);
    queue.added[0].written('1');
    await poll();
    // 'b' waited behind the first write: its own is in flight now.
    expect([queue.jobs, settled]).toEqual([[['a'], ['b']], false]);
    // A request of the next version, written after, does not hold the settling of version 1.
    void submit('c', { version: '2' });
    queue.added[1].written('2');
    await poll();
    expect(settled).toBe(true);
  });

  it('writes the requests gathered so far before each depth read, even while a write is in flight', async () => {
    jest.useFakeTimers({ doNotFake: ['performance', 'nextTick', 'queueMicrotask'] });
    const { queue, submit, depth } = setup();
    const writtenAtRead: string[][][] = [];
    jest.spyOn(depth, 'refresh').mockImplementation(async () => void writtenAtRead.push(queue.jobs));
    depth.onModuleInit();
    void submit('a');
    jest.advanceTimersByTime(0);
    void submit('b');
    jest.advanceTimersByTime(1);
    expect(queue.jobs).toEqual([['a']]);
    jest.advanceTimersByTime(DEPTH_REFRESH_MS);
    expect(writtenAtRead).toEqual([[['a'], ['b']]]);
    depth.beforeApplicationShutdown();
  });

  it('refuses with QUEUE_FULL once MAX_QUEUE_DEPTH requests are queued for the model, counting those of the same tick, and writes none of them', async () => {
    const { queue, submit } = setup();
    for (const id of ['a', 'b', 'c', 'd']) void submit(id);
    expect(await submit('e')).toEqual({ code: ErrorCode.QUEUE_FULL, message: "model 'stub_v1' has 4 or more requests queued; retry shortly" });
    void submit('other', { modelId: 'other' });
    await endOfTick();
    expect(queue.jobs.flat()).toEqual(['a', 'b', 'c', 'd', 'other']);
  });

  it('refuses with SHUTTING_DOWN once shutdown began, and still answers the requests accepted before', async () => {
    const { pending, queue, submit } = setup();
    const accepted = submit('a');
    pending.beginShutdown();
    expect(await submit('b')).toEqual({ code: ErrorCode.SHUTTING_DOWN, message: 'this replica is shutting down; retry on another' });
    await endOfTick();
    expect(queue.jobs).toEqual([['a']]);
    pending.settle(result('a'));
    expect(await accepted).toEqual({ outcome: result('a') });
  });

  it('refuses with QUEUE_UNAVAILABLE while Redis is unreachable, writing nothing', async () => {
    const { connection, queue, submit } = setup();
    connection.connected = false;
    expect(await submit('a')).toEqual({ code: ErrorCode.QUEUE_UNAVAILABLE, message: 'the queue (Redis) is unreachable; retry shortly' });
    await endOfTick();
    expect(queue.added).toEqual([]);
  });

  it('fails a job\'s requests with QUEUE_UNAVAILABLE when its write fails, and gives their rows back to the depth', async () => {
    const { queue, submit, depth, redis } = setup();
    const [a, b] = [submit('a'), submit('b')];
    const other = submit('c', { priority: 1 });
    await endOfTick();
    expect(depth.total('stub_v1')).toBe(3);
    queue.added[0].failed(new Error('Connection is closed.'));
    expect(await a).toMatchObject({ code: ErrorCode.QUEUE_UNAVAILABLE });
    expect(await b).toMatchObject({ code: ErrorCode.QUEUE_UNAVAILABLE });
    expect(depth.total('stub_v1')).toBe(1);
    expect(redis.logError).toHaveBeenCalledWith(expect.objectContaining({ message: 'Connection is closed.' }));
    // The other job was written: its request still waits for its result.
    queue.added[1].written('2');
    await endOfTick();
    expect(await Promise.race([other, endOfTick().then(() => 'waiting')])).toBe('waiting');
  });

  it('fails with QUEUE_UNAVAILABLE a write Redis has not confirmed within a second', async () => {
    const { submit } = setup();
    const a = submit('a');
    await endOfTick();
    jest.advanceTimersByTime(999);
    expect(await Promise.race([a, endOfTick().then(() => 'waiting')])).toBe('waiting');
    jest.advanceTimersByTime(1);
    expect(await a).toMatchObject({ code: ErrorCode.QUEUE_UNAVAILABLE });
  });

  it('does not write a request whose client left within its tick, and tells the other replicas it is cancelled', async () => {
    const { queue, router, submit, leave } = setup();
    const a = submit('a', { timeoutMs: 3000 });
    leave.get('a')!();
    expect(await a).toEqual({ code: ErrorCode.CLIENT_CLOSED, message: 'the client closed the connection' });
    expect(router.cancel).toHaveBeenCalledWith('a', expect.any(Number));
    await endOfTick();
    expect(queue.added).toEqual([]);
  });

  it('removes a written job once every one of its clients left, giving its rows back to the depth', async () => {
    const { queue, submit, leave, depth } = setup();
    void submit('a');
    void submit('b');
    await endOfTick();
    queue.added[0].written('7');
    await endOfTick();
    leave.get('a')!();
    expect(queue.removed).toEqual([]);
    leave.get('b')!();
    await endOfTick();
    expect(queue.removed).toEqual(['infer/stub_v1/1/7']);
    expect(depth.total('stub_v1')).toBe(0);
  });

  it('removes a job whose requests all timed out while it was being written, once the write returns', async () => {
    const { queue, submit } = setup();
    const a = submit('a', { timeoutMs: 500 });
    await endOfTick();
    jest.advanceTimersByTime(500);
    expect(await a).toMatchObject({ code: ErrorCode.TIMEOUT });
    expect(queue.removed).toEqual([]);
    queue.added[0].written('7');
    await endOfTick();
    expect(queue.removed).toEqual(['infer/stub_v1/1/7']);
  });

  it('leaves a job in the queue when any of its requests got a result', async () => {
    const { queue, pending, submit, leave } = setup();
    void submit('a');
    void submit('b');
    await endOfTick();
    queue.added[0].written('7');
    await endOfTick();
    pending.settle(result('a'));
    leave.get('b')!();
    await endOfTick();
    expect(queue.removed).toEqual([]);
  });

  it('keeps the rows on the depth when a worker holds the job and BullMQ refuses to remove it', async () => {
    const { queue, submit, leave, depth } = setup();
    queue.removes = 0;
    void submit('a');
    await endOfTick();
    queue.added[0].written('7');
    await endOfTick();
    leave.get('a')!();
    await endOfTick();
    expect(queue.removed).toEqual(['infer/stub_v1/1/7']);
    expect(depth.total('stub_v1')).toBe(1);
  });

  describe('rows too big to travel inline', () => {
    const IMAGE: EncodedRow = { buffers: [Buffer.alloc(110_592, 1)], dims: [[3, 48, 192]] };

    /** A Redis client that records what the producer sets and deletes, on the queue's connection. */
    function withClient() {
      const ctx = setup();
      const log: string[] = [];
      const sets: { key: string; value: Buffer; ttl: number }[] = [];
      const client = {
        // Row bytes come as commands of their own (UncopiedCommand): SET key value PX ttl, APPEND key value.
        sendCommand: (command: Command) => {
          const [key, value, , ttl] = command.args as [string, Buffer, string?, string?];
          log.push(`${command.name} ${key}`);
          sets.push({ key, value, ttl: command.name === 'set' ? Number(ttl) : NaN });
          command.resolve(command.name === 'set' ? 'OK' : value.byteLength);
        },
        del: async (key: string) => {
          log.push(`del ${key}`);
          return 1;
        },
      };
      (ctx.connection as { client: unknown }).client = client;
      (ctx.queue as unknown as { client: Promise<unknown> }).client = Promise.resolve(client);
      const add = ctx.queue.add.bind(ctx.queue);
      ctx.queue.add = (queue, job, data, opts) => {
        log.push(`add ${data.b}`);
        return add(queue, job, data, opts);
      };
      return { ...ctx, log, sets };
    }

    it('sets their bytes in a key under the queue prefix, row after row and each as it is, before the job that names it, expiring after the deadlines', async () => {
      const { queue, submit, log, sets } = withClient();
      const second: EncodedRow = { buffers: [Buffer.alloc(110_592, 2)], dims: [[3, 48, 192]] };
      void submit('a', { row: IMAGE, timeoutMs: 3000 });
      void submit('b', { row: second, timeoutMs: 4000 });
      await endOfTick();
      const key = queue.added[0].data.b!;
      expect(key).toMatch(new RegExp(`^bales:infer:rows:${HERE}:\\d+$`));
      expect(log).toEqual([`set ${key}`, `append ${key}`, `add ${key}`]);
      // No concatenated copy: the rows' own buffers go to the client.
      expect(sets.map((s) => s.value)).toEqual([IMAGE.buffers[0], second.buffers[0]]);
      expect(sets[0].value).toBe(IMAGE.buffers[0]);
      expect(sets[0].ttl).toBeGreaterThanOrEqual(4000);
      expect(queue.added[0].data.r.map((r) => [r[0], r[3], r[4]])).toEqual([
        ['a', [110_592], [[3, 48, 192]]],
        ['b', [110_592], [[3, 48, 192]]],
      ]);
    });

    it('keeps the bytes it wrote for this replica\'s own consumer, once that runs, and lets them go with a job that was not written', async () => {
      const { queue, submit, direct, log } = withClient();
      void submit('a', { row: IMAGE });
      await endOfTick();
      // No processor here yet: nothing kept.
      expect(direct.rowBytes.size).toBe(0);
      queue.added[0].written('1');
      direct.rowBytes.enable();
      void submit('b', { row: IMAGE });
      await endOfTick();
      await endOfTick();
      const kept = queue.added[1].data.b!;
      expect(direct.rowBytes.size).toBe(110_592);
      queue.added[1].written('2');
      void submit('c', { row: IMAGE });
      await endOfTick();
      await endOfTick();
      queue.added[2].failed(new Error('Connection is closed.'));
      await endOfTick();
      expect(log).toContain(`del ${queue.added[2].data.b}`);
      expect(direct.rowBytes.size).toBe(110_592);
      expect(direct.rowBytes.take(kept)?.[0]).toBe(IMAGE.buffers[0]);
    });

    it('deletes the bytes with a job removed because its every request was abandoned', async () => {
      const { queue, submit, leave, log } = withClient();
      void submit('a', { row: IMAGE });
      await endOfTick();
      queue.added[0].written('7');
      await endOfTick();
      leave.get('a')!();
      await endOfTick();
      await endOfTick();
      expect(queue.removed).toEqual(['infer/stub_v1/1/7']);
      expect(log).toEqual([`set ${queue.added[0].data.b}`, `add ${queue.added[0].data.b}`, `del ${queue.added[0].data.b}`]);
    });

    it('deletes the bytes of a job that could not be written, failing its requests', async () => {
      const { queue, submit, log } = withClient();
      const a = submit('a', { row: IMAGE });
      await endOfTick();
      queue.added[0].failed(new Error('Connection is closed.'));
      expect(await a).toEqual(expect.objectContaining({ code: ErrorCode.QUEUE_UNAVAILABLE }));
      expect(log[2]).toBe(`del ${queue.added[0].data.b}`);
    });
  });
  describe('direct dispatch', () => {
    /** A consumer that takes what it is offered while `idle`, recording each row, and counts it taken as the real one does. */
    const idleConsumer = (ctx: ReturnType<typeof setup>, idle = () => true) => {
      const taken: string[] = [];
      ctx.direct.offer((row) => {
        if (!idle()) return false;
        taken.push(row.requestId);
        ctx.depth.removeTaken(row.modelId, row.priority, [row.deadline]);
        return true;
      });
      return taken;
    };

    it('hands a request to an idle consumer instead of writing a job, and settles it from its result', async () => {
      const ctx = setup();
      const taken = idleConsumer(ctx);
      const answer = ctx.submit('a');
      await endOfTick();
      expect(taken).toEqual(['a']);
      expect(ctx.queue.added).toHaveLength(0);
      // Counted as written and taken at once: nothing stays in the depth.
      expect(ctx.depth.total('stub_v1')).toBe(0);
      ctx.pending.settle(result('a'));
      expect(await answer).toEqual({ outcome: result('a') });
    });

    it('queues what the consumer does not take, and never hands over a row while others of the tick wait to be written', async () => {
      const ctx = setup({ MAX_QUEUE_DEPTH: '100' });
      let idle = false;
      const taken = idleConsumer(ctx, () => idle);
      void ctx.submit('busy');
      idle = true;
      // Gathered behind 'busy' in the same tick: it may be less urgent than what is being written.
      void ctx.submit('behind');
      await endOfTick();
      expect(taken).toEqual([]);
      expect(ctx.queue.jobs).toEqual([['busy', 'behind']]);
      // While that write is in flight, too.
      void ctx.submit('during');
      await endOfTick();
      expect(taken).toEqual([]);
      ctx.queue.added[0].written('1');
      await endOfTick();
      expect(ctx.queue.jobs).toEqual([['busy', 'behind'], ['during']]);
    });

    it("queues a row that must travel with its request's other rows, however idle the consumer", async () => {
      const ctx = setup();
      const taken = idleConsumer(ctx);
      void ctx.submit('a/0', { direct: false });
      void ctx.submit('a/1', { direct: false });
      await endOfTick();
      expect(taken).toEqual([]);
      expect(ctx.queue.jobs).toEqual([['a/0', 'a/1']]);
    });

    it('drops a directly taken request whose client leaves, as a queued one', async () => {
      const ctx = setup();
      idleConsumer(ctx);
      const answer = ctx.submit('a');
      ctx.leave.get('a')!();
      expect(await answer).toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
      expect(ctx.pending.has('a')).toBe(false);
      // Its row was never in Redis: no other replica needs telling.
      expect(ctx.router.cancel).not.toHaveBeenCalled();
    });
  });
});
