import type { Job } from 'bullmq';
import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow, ModelRegistry } from '@bales/model-registry';
import type { BalesMetrics } from '@bales/observability';
import { FakeModelRegistry } from '../../../test/support/fake-model-registry';
import { BatchRunner } from './batch-runner';
import { DirectDispatch } from './direct-dispatch';
import { epochNow } from './clock';
import { InferJobData, encodeJob, encodeRow } from './job-codec';
import type { ModelQueues } from './model-queues';
import { PendingRequests, ResultMessage } from './pending-requests';
import { QueueConsumer, RowBytesStore } from './queue-consumer';
import type { QueueConnection } from './queue-connection';
import type { QueueDepth } from './queue-depth';
import type { RedisConnections } from './redis-connections';
import type { ResultRouter } from './result-router';

const NOW_BAD = 'not a time';

// Rows come from another replica, so none needs a pending request here to count as wanted.
const ORIGIN = 'replica-b';

function stubRow(label: number, width = 128): EncodedRow {
  const values = new Float32Array(width);
  values[label] = 1;
  return { buffers: [Buffer.from(values.buffer)], dims: [[width]] };
}

/** A job as the BullMQ worker hands it over, its rows written by ORIGIN. */
function job(rows: { id: string; row?: EncodedRow; deadline?: number }[], extra: { modelId?: string; version?: string; stalledCounter?: number } = {}): Job {
  const now = epochNow();
  const data: InferJobData = { m: extra.modelId ?? 'stub_v1', v: extra.version ?? '1', o: ORIGIN, r: rows.map((r, i) => encodeRow(r.id, now, r.deadline ?? now + 5000, r.row ?? stubRow(i))) };
  return { data, opts: { priority: 2 }, stalledCounter: extra.stalledCounter ?? 0 } as unknown as Job;
}

function setup() {
  const config = loadConfig({ MAX_BATCH_SIZE: '8', BATCH_WINDOW_MS: '5' });
  const registry = new FakeModelRegistry([{ id: 'stub_v1' }], { slots: 1 });
  const delivered: ResultMessage[] = [];
  const router = { instanceId: 'replica-a', isCancelled: () => false, deliver: (r: { message: ResultMessage }[]) => delivered.push(...r.map((d) => d.message)) };
  const metrics = { batch: () => undefined, queued: () => undefined, directRow: jest.fn() };
  const pending = new PendingRequests();
  const runner = new BatchRunner(metrics as unknown as BalesMetrics, registry as unknown as ModelRegistry, router as unknown as ResultRouter, pending);
  const depth = { removeTaken: jest.fn() };
  const connection = { connected: true };
  const direct = new DirectDispatch();
  // Jobs of each model version's queue still queued or held anywhere, as ModelQueues counts them in Redis.
  const unfinished = new Map<string, number>();
  const forgotten: string[] = [];
  const queues = {
    unfinished: async (modelId: string, version: string) => unfinished.get(`${modelId}@${version}`) ?? 0,
    forget: async (modelId: string, version: string) => void forgotten.push(`${modelId}@${version}`),
  };
  const consumer = new QueueConsumer(
    config,
    registry as unknown as ModelRegistry,
    runner,
    { instanceId: router.instanceId } as RedisConnections,
    connection as QueueConnection,
    depth as unknown as QueueDepth,
    direct,
    metrics as unknown as BalesMetrics,
    queues as unknown as ModelQueues,
  );
  return { registry, delivered, depth, direct, metrics, consumer, unfinished, forgotten, pending };
}

/** Holds every batch until `release()` lets the oldest one held finish. */
function holdBatches(registry: FakeModelRegistry) {
  const held: (() => void)[] = [];
  registry.beforeRun = () => new Promise<void>((resolve) => held.push(resolve));
  return { release: () => held.shift()?.() };
}

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('QueueConsumer', () => {
  it('runs a job\'s rows and completes the job only once every row is answered', async () => {
    const { consumer, registry, delivered } = setup();
    // One row per batch: the job's two rows run one after the other.
    registry.add({ id: 'stub_v1', maxBatchSize: 1 });
    const gate = holdBatches(registry);
    const processed = consumer.process(job([{ id: 'a' }, { id: 'b' }]));
    expect(await settled(processed)).toBe(false);
    gate.release();
    expect(await settled(processed)).toBe(false);
    gate.release();
    await processed;
    expect(delivered.map((m) => [m.id, m.ok])).toEqual([
      ['a', true],
      ['b', true],
    ]);
  });

  it('reports the rows it takes to the shared depth with their model, priority and deadlines', async () => {
    const { consumer, depth } = setup();
    const deadline = epochNow() + 4000;
    await consumer.process(job([{ id: 'a', deadline }, { id: 'b', deadline }]));
    expect(depth.removeTaken).toHaveBeenCalledTimes(1);
    expect(depth.removeTaken).toHaveBeenCalledWith('stub_v1', 2, [deadline, deadline]);
  });

  it('does not report a job run again after a stall: the replica that first took it already did', async () => {
    const { consumer, depth, delivered } = setup();
    await consumer.process(job([{ id: 'a' }], { stalledCounter: 1 }));
    expect(depth.removeTaken).not.toHaveBeenCalled();
    expect(delivered.map((m) => m.id)).toEqual(['a']);
  });

  it('fails a job whose payload from Redis is malformed, running and reporting nothing', async () => {
    const { consumer, registry, depth, delivered } = setup();
    const bad = { data: { m: 'stub_v1', v: '1', o: ORIGIN, r: [['a', 'not a time', 0, [], []]] }, opts: { priority: 2 }, stalledCounter: 0 } as unknown as Job;
    await expect(consumer.process(bad)).rejects.toThrow('malformed infer job row 0: id or times');
    await expect(consumer.process({ data: { m: 'stub_v1' }, opts: {} } as unknown as Job)).rejects.toThrow('malformed infer job');
    // Without a version as a string, the job's rows cannot be matched to sessions of the version they were admitted under.
    await expect(consumer.process(job([{ id: 'a' }], { version: 1 as unknown as string }))).rejects.toThrow('malformed infer job: expected {m, v, o, r[]}');
    expect(registry.batches).toEqual([]);
    expect(depth.removeTaken).not.toHaveBeenCalled();
    expect(delivered).toEqual([]);
  });

  it('answers MODEL_UNAVAILABLE with the model, its state and the reason, running nothing, for the rows of a model that failed to load on this replica', async () => {
    const { consumer, registry, delivered } = setup();
    registry.add({ id: 'broken', failed: 'cannot load broken/model.onnx' });
    await consumer.process(job([{ id: 'a' }], { modelId: 'broken' }));
    expect(registry.batches).toEqual([]);
    expect(delivered).toEqual([
      {
        id: 'a',
        ok: false,
        code: ErrorCode.MODEL_UNAVAILABLE,
        message: "model 'broken' failed to load on the replica that took this request: cannot load broken/model.onnx",
        details: { model_id: 'broken', state: 'failed', reason: 'cannot load broken/model.onnx' },
      },
    ]);
  });

  it('answers MODEL_NOT_FOUND for the rows of a model this replica does not serve', async () => {
    const { consumer, registry, delivered } = setup();
    await consumer.process(job([{ id: 'a' }, { id: 'b' }], { modelId: 'gone' }));
    expect(registry.batches).toEqual([]);
    expect(delivered).toEqual([
      { id: 'a', ok: false, code: ErrorCode.MODEL_NOT_FOUND, message: "model 'gone' is not registered" },
      { id: 'b', ok: false, code: ErrorCode.MODEL_NOT_FOUND, message: "model 'gone' is not registered" },
    ]);
  });

  it('runs rows on the version they were admitted under, and answers MODEL_UNAVAILABLE for a version this replica no longer holds', async () => {
    const { consumer, registry, delivered } = setup();
    await registry.reload('stub_v1', 'stub_v2.onnx');
    await consumer.process(job([{ id: 'old' }], { version: '1' }));
    await consumer.process(job([{ id: 'new' }], { version: '2' }));
    expect(registry.batches.map((b) => [b.version, b.rows.length])).toEqual([['2', 1]]);
    expect(delivered).toEqual([
      { id: 'old', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: "model 'stub_v1' v1 is not held by the replica that took this request; retry shortly", details: { model_id: 'stub_v1', state: 'ready' } },
      expect.objectContaining({ id: 'new', ok: true, model_version: '2' }),
    ]);
  });

  it('reports a version drained only once its queue holds no job anywhere and none of its rows is in hand here, then forgets its queue', async () => {
    const { consumer, registry, unfinished, forgotten } = setup();
    const gate = holdBatches(registry);
    unfinished.set('stub_v1@1', 1);
    const processed = consumer.process(job([{ id: 'a' }]));
    let drained = false;
    const draining = consumer.drained('stub_v1', '1').then(() => (drained = true));
    // The queue is looked at every 100 ms: each wait spans more than one look.
    const looks = () => new Promise((r) => setTimeout(r, 250));
    await looks();
    expect(drained).toBe(false);
    unfinished.set('stub_v1@1', 0);
    await looks();
    expect(drained).toBe(false);
    gate.release();
    await processed;
    await draining;
    expect(forgotten).toEqual(['stub_v1@1']);
  });

  it('answers INVALID_INPUT for a row that does not fit the model, and runs the others', async () => {
    const { consumer, registry, delivered } = setup();
    await consumer.process(job([{ id: 'short', row: stubRow(0, 64) }, { id: 'fits' }]));
    expect(delivered.find((m) => m.id === 'short')).toEqual(expect.objectContaining({ ok: false, code: ErrorCode.INVALID_INPUT }));
    expect(delivered.find((m) => m.id === 'fits')).toEqual(expect.objectContaining({ ok: true }));
    expect(registry.batches.map((b) => b.rows.length)).toEqual([1]);
  });

  it('skips rows whose deadline passed before they were taken, and completes the job at once', async () => {
    const { consumer, registry, delivered } = setup();
    await consumer.process(job([{ id: 'late', deadline: epochNow() - 1 }]));
    expect(registry.batches).toEqual([]);
    expect(delivered).toEqual([]);
  });

  it('batches the rows of jobs that wait together into one batch', async () => {
    const { consumer, registry } = setup();
    const gate = holdBatches(registry);
    const first = consumer.process(job([{ id: 'a' }]));
    // The one slot is busy with the first job: the next two wait, and leave together once it is free.
    const rest = [consumer.process(job([{ id: 'b' }])), consumer.process(job([{ id: 'c' }, { id: 'd' }]))];
    gate.release();
    await first;
    await new Promise((r) => setImmediate(r));
    gate.release();
    await Promise.all(rest);
    expect(registry.batches.map((b) => b.rows.length)).toEqual([1, 3]);
  });

  describe('rows whose bytes are in a key of their own', () => {
    /** A job in the binary layout, its bytes stored in `store` unless told otherwise. */
    function binaryJob(store: Map<string, Buffer>, rows: { id: string; row?: EncodedRow }[], bytes?: (b: Buffer) => Buffer | undefined): Job {
      const now = epochNow();
      const encoded = encodeJob('stub_v1', '1', ORIGIN, rows.map((r, i) => ({ requestId: r.id, enqueuedAt: now, deadline: now + 5000, row: r.row ?? stubRow(i) })), () => `k${store.size}`, now, 0);
      const value = bytes ? bytes(Buffer.concat(encoded.bytes!.parts)) : Buffer.concat(encoded.bytes!.parts);
      if (value) store.set(encoded.bytes!.key, value);
      return { data: encoded.data, opts: { priority: 2 }, stalledCounter: 0 } as unknown as Job;
    }

    function withStore() {
      const ctx = setup();
      const store = new Map<string, Buffer>();
      const deleted: string[] = [];
      const rowBytes: RowBytesStore = {
        getBuffer: async (key) => store.get(key) ?? null,
        del: async (key) => {
          deleted.push(key);
          return store.delete(key) ? 1 : 0;
        },
      };
      ctx.consumer.rowBytes = rowBytes;
      return { ...ctx, store, deleted };
    }

    it('reads them, runs the rows, and deletes the key once the job is done', async () => {
      const { consumer, registry, delivered, store, deleted } = withStore();
      const gate = holdBatches(registry);
      const processed = consumer.process(binaryJob(store, [{ id: 'a' }, { id: 'b' }]));
      await new Promise((r) => setImmediate(r));
      expect(deleted).toEqual([]);
      gate.release();
      await processed;
      expect(delivered.map((m) => [m.id, m.ok])).toEqual([
        ['a', true],
        ['b', true],
      ]);
      expect(registry.batches[0].rows.map((r) => r.buffers[0].equals(stubRow(registry.batches[0].rows.indexOf(r)).buffers[0]))).toEqual([true, true]);
      expect(deleted).toEqual(['k0']);
      expect(store.size).toBe(0);
    });

    it('takes the bytes of a job this replica wrote from memory, reading nothing from Redis, and still deletes the key', async () => {
      const { consumer, registry, delivered, direct, deleted, pending } = withStore();
      const now = epochNow();
      const rows = [0, 1].map((i) => ({ requestId: `own${i}`, enqueuedAt: now, deadline: now + 5000, row: stubRow(i) }));
      // This replica's own clients wait for these rows (the fake router delivers without settling them).
      for (const r of rows) pending.add(r.requestId, 5000).catch(() => undefined);
      const encoded = encodeJob('stub_v1', '1', 'replica-a', rows, () => 'own-key', now, 0);
      direct.rowBytes.enable();
      direct.rowBytes.keep('own-key', encoded.bytes!.parts, now + 5000, now);
      // Nothing under the key in Redis: a GET would find the bytes gone.
      await consumer.process({ data: encoded.data, opts: { priority: 2 }, stalledCounter: 0 } as unknown as Job);
      expect(delivered.map((m) => [m.id, m.ok])).toEqual([
        ['own0', true],
        ['own1', true],
      ]);
      expect(registry.batches[0].rows.map((r, i) => r.buffers[0].equals(stubRow(i).buffers[0]))).toEqual([true, true]);
      expect(direct.rowBytes.size).toBe(0);
      expect(deleted).toEqual(['own-key']);
      for (const r of rows) pending.fail(r.requestId, new BalesError(ErrorCode.CLIENT_CLOSED, 'done'));
    });

    it('lets go of the bytes it kept for its own job when no row of it runs (every client gone)', async () => {
      const { consumer, registry, direct, deleted } = withStore();
      const now = epochNow();
      const rows = [0, 1].map((i) => ({ requestId: `gone${i}`, enqueuedAt: now, deadline: now + 5000, row: stubRow(i) }));
      const encoded = encodeJob('stub_v1', '1', 'replica-a', rows, () => 'gone-key', now, 0);
      direct.rowBytes.enable();
      direct.rowBytes.keep('gone-key', encoded.bytes!.parts, now + 5000, now);
      // Nobody waits for these rows here: they are dropped before their bytes are read.
      await consumer.process({ data: encoded.data, opts: { priority: 2 }, stalledCounter: 0 } as unknown as Job);
      expect(registry.batches).toEqual([]);
      expect(direct.rowBytes.size).toBe(0);
      expect(deleted).toEqual(['gone-key']);
    });

    it('reads the bytes from Redis for a job another replica wrote, whatever this replica keeps', async () => {
      const { consumer, registry, delivered, direct, store } = withStore();
      const job = binaryJob(store, [{ id: 'a' }]);
      direct.rowBytes.enable();
      // The same key kept here with other bytes: only the job's own origin may take them.
      direct.rowBytes.keep('k0', [Buffer.alloc(store.get('k0')!.byteLength, 9)], epochNow() + 5000, epochNow());
      await consumer.process(job);
      expect(delivered.map((m) => [m.id, m.ok])).toEqual([['a', true]]);
      // The row ran on the bytes from Redis, not on the 9s kept here.
      expect(registry.batches[0].rows[0].buffers[0].equals(stubRow(0).buffers[0])).toBe(true);
    });

    it('answers QUEUE_UNAVAILABLE for every row when the key is gone, running nothing', async () => {
      const { consumer, registry, delivered, store } = withStore();
      await consumer.process(binaryJob(store, [{ id: 'a' }, { id: 'b' }], () => undefined));
      expect(registry.batches).toEqual([]);
      expect(delivered.map((m) => [m.id, m.ok, m.ok ? '' : m.code])).toEqual([
        ['a', false, ErrorCode.QUEUE_UNAVAILABLE],
        ['b', false, ErrorCode.QUEUE_UNAVAILABLE],
      ]);
    });

    it('answers QUEUE_UNAVAILABLE when the key cannot be read, and stays up', async () => {
      const { consumer, registry, delivered, store } = withStore();
      consumer.rowBytes = { getBuffer: () => Promise.reject(new Error('Connection is closed.')), del: () => Promise.reject(new Error('Connection is closed.')) };
      (consumer as unknown as { redis: { logError: () => void } }).redis = { logError: jest.fn() };
      await consumer.process(binaryJob(store, [{ id: 'a' }]));
      expect(registry.batches).toEqual([]);
      expect(delivered).toEqual([expect.objectContaining({ id: 'a', ok: false, code: ErrorCode.QUEUE_UNAVAILABLE })]);
    });

    it('answers INVALID_INPUT for every row when the bytes do not add up to what the job declares', async () => {
      const { consumer, registry, delivered, store, deleted } = withStore();
      await consumer.process(binaryJob(store, [{ id: 'a' }, { id: 'b' }], (b) => b.subarray(1)));
      expect(registry.batches).toEqual([]);
      expect(delivered).toEqual([
        expect.objectContaining({ id: 'a', ok: false, code: ErrorCode.INVALID_INPUT, message: "the rows' input bytes in Redis are 1023 bytes, the job declares 1024" }),
        expect.objectContaining({ id: 'b', ok: false, code: ErrorCode.INVALID_INPUT }),
      ]);
      expect(deleted).toEqual(['k0']);
    });

    it('answers INVALID_INPUT for a row whose bytes do not fit its shape and the model, and runs the others', async () => {
      const { consumer, registry, delivered, store } = withStore();
      await consumer.process(binaryJob(store, [{ id: 'short', row: stubRow(0, 64) }, { id: 'fits' }]));
      expect(delivered.find((m) => m.id === 'short')).toEqual(expect.objectContaining({ ok: false, code: ErrorCode.INVALID_INPUT }));
      expect(delivered.find((m) => m.id === 'fits')).toEqual(expect.objectContaining({ ok: true }));
      expect(registry.batches.map((b) => b.rows.length)).toEqual([1]);
    });

    it('does not read the bytes of rows that expired, and deletes them', async () => {
      const { consumer, registry, store, deleted } = withStore();
      const job = binaryJob(store, [{ id: 'late' }]);
      (job.data as InferJobData).r[0][2] = epochNow() - 1;
      const read = jest.spyOn(consumer.rowBytes!, 'getBuffer');
      await consumer.process(job);
      expect(read).not.toHaveBeenCalled();
      expect(registry.batches).toEqual([]);
      expect(deleted).toEqual(['k0']);
    });

    it('fails a malformed job with a bytes key, deleting the key', async () => {
      const { consumer, deleted } = withStore();
      const bad = { data: { m: 'stub_v1', v: '1', o: ORIGIN, r: [['a', NOW_BAD, 0, ['x'], [[1]]]], b: 'k9' }, opts: { priority: 2 }, stalledCounter: 0 } as unknown as Job;
      await expect(consumer.process(bad)).rejects.toThrow('malformed infer job row 0: id or times');
      expect(deleted).toEqual(['k9']);
    });
  });
});
