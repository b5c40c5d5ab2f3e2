import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow, ModelRegistry } from '@bales/model-registry';
import type { BalesMetrics } from '@bales/observability';
import { FakeModelRegistry } from '../../../test/support/fake-model-registry';
import { BatchRunner } from './batch-runner';
import { epochNow } from './clock';
import type { QueuedRow } from './job-codec';
import { PendingRequests, ResultMessage } from './pending-requests';
import type { ResultRouter } from './result-router';

const HERE = 'replica-a';

/** A stub row the fake classifier answers with `label`: a one at that index, zeros elsewhere. */
function stubRow(label: number): EncodedRow {
  const values = new Float32Array(128);
  values[label] = 1;
  return { buffers: [Buffer.from(values.buffer)], dims: [[128]] };
}

function setup() {
  const registry = new FakeModelRegistry([{ id: 'stub_v1', version: 3 }]);
  const pending = new PendingRequests();
  const delivered: { origin: string; message: ResultMessage }[] = [];
  const cancelled = new Set<string>();
  const router = { instanceId: HERE, isCancelled: (id: string) => cancelled.has(id), deliver: (r: typeof delivered) => delivered.push(...r) };
  const metrics = { batch: jest.fn(), queued: jest.fn() };
  const runner = new BatchRunner(metrics as unknown as BalesMetrics, registry as unknown as ModelRegistry, router as unknown as ResultRouter, pending);
  /** A row queued by `origin`; one of this replica's own is pending here, as its client waits. */
  const queued = (requestId: string, label: number, extra: Partial<QueuedRow> = {}): QueuedRow => {
    const row: QueuedRow = { requestId, modelId: 'stub_v1', version: '3', origin: HERE, priority: 2, enqueuedAt: epochNow(), deadline: epochNow() + 5000, fetchedAt: epochNow(), row: stubRow(label), ...extra };
    if (row.origin === HERE) void pending.add(requestId, 5000).catch(() => undefined);
    return row;
  };
  return { registry, pending, delivered, cancelled, metrics, runner, queued };
}

describe('BatchRunner', () => {
  // Fake timers: the deadline timers of requests left waiting end with the test.
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['performance'] }));
  afterEach(() => jest.useRealTimers());

  it('runs the rows as one batch and answers each with its own result, the model version and the batch size', async () => {
    const { runner, queued, delivered, registry } = setup();
    await runner.run('stub_v1', [queued('a', 4), queued('b', 7)]);
    expect(registry.batches).toHaveLength(1);
    expect(delivered.map((d) => d.message)).toEqual([
      expect.objectContaining({ id: 'a', ok: true, model_id: 'stub_v1', model_version: '3', batch_size: 2, result: expect.objectContaining({ label: 4 }) }),
      expect.objectContaining({ id: 'b', ok: true, model_id: 'stub_v1', model_version: '3', batch_size: 2, result: expect.objectContaining({ label: 7 }) }),
    ]);
    expect(runner.stats).toEqual({ batches: 1, rowsRun: 2, rowsExpired: 0 });
  });

  it('sends each result to the replica that holds its client', async () => {
    const { runner, queued, delivered } = setup();
    await runner.run('stub_v1', [queued('a', 1), queued('b', 2, { origin: 'replica-b' })]);
    expect(delivered.map((d) => [d.message.id, d.origin])).toEqual([
      ['a', HERE],
      ['b', 'replica-b'],
    ]);
  });

  it('runs rows on the version they name, and answers MODEL_UNAVAILABLE for a version this replica does not hold', async () => {
    const { runner, queued, delivered, registry } = setup();
    await runner.run('stub_v1', [queued('a', 1)], '3');
    await runner.run('stub_v1', [queued('b', 2, { version: '2' })], '2');
    expect(registry.batches.map((b) => b.version)).toEqual(['3']);
    expect(delivered.map((d) => d.message)).toEqual([
      expect.objectContaining({ id: 'a', ok: true, model_version: '3' }),
      { id: 'b', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: "model 'stub_v1' v2 is not held by the replica that took this request", details: { model_id: 'stub_v1', state: 'ready' } },
    ]);
  });

  it('answers every row of a failed batch with INFERENCE_FAILED', async () => {
    const { runner, queued, delivered, registry } = setup();
    registry.beforeRun = () => {
      throw new Error('session crashed');
    };
    await runner.run('stub_v1', [queued('a', 1), queued('b', 2)]);
    expect(delivered.map((d) => d.message)).toEqual([
      { id: 'a', ok: false, code: ErrorCode.INFERENCE_FAILED, message: expect.stringContaining('session crashed') },
      { id: 'b', ok: false, code: ErrorCode.INFERENCE_FAILED, message: expect.stringContaining('session crashed') },
    ]);
    expect(runner.stats.batches).toBe(0);
  });

  it('skips rows past their deadline, of a client this replica already answered, or cancelled by another replica, counting them expired', async () => {
    const { runner, queued, delivered, registry, pending, cancelled } = setup();
    const late = queued('late', 1, { deadline: epochNow() - 1 });
    const answered = queued('answered', 2);
    pending.fail('answered', new BalesError(ErrorCode.CLIENT_CLOSED, 'gone'));
    const elsewhere = queued('elsewhere', 3, { origin: 'replica-b' });
    cancelled.add('elsewhere');
    await runner.run('stub_v1', [late, answered, elsewhere, queued('live', 4)]);
    expect(registry.batches.map((b) => b.rows.length)).toEqual([1]);
    expect(delivered.map((d) => d.message.id)).toEqual(['live']);
    expect(runner.stats).toEqual({ batches: 1, rowsRun: 1, rowsExpired: 3 });
  });

  it('runs nothing when no row is wanted any more', async () => {
    const { runner, queued, registry, delivered } = setup();
    await runner.run('stub_v1', [queued('late', 1, { deadline: epochNow() - 1 })]);
    expect(registry.batches).toEqual([]);
    expect(delivered).toEqual([]);
  });

  it('records the batch size and each row\'s wait, never negative when the producer\'s clock runs ahead', async () => {
    const { runner, queued, metrics } = setup();
    await runner.run('stub_v1', [queued('a', 1, { enqueuedAt: epochNow() + 60_000 }), queued('b', 2)]);
    expect(metrics.batch).toHaveBeenCalledWith(2, expect.any(Number));
    expect(metrics.queued).toHaveBeenCalledTimes(2);
    for (const [wait] of metrics.queued.mock.calls) expect(wait).toBeGreaterThanOrEqual(0);
  });

  it('answers rows it cannot batch with the error it is given', () => {
    const { runner, queued, delivered, registry } = setup();
    runner.reject([queued('a', 1, { origin: 'replica-b' })], new BalesError(ErrorCode.MODEL_NOT_FOUND, "model 'x' is not registered"));
    expect(delivered).toEqual([{ origin: 'replica-b', message: { id: 'a', ok: false, code: ErrorCode.MODEL_NOT_FOUND, message: "model 'x' is not registered" } }]);
    expect(registry.batches).toEqual([]);
  });
});
