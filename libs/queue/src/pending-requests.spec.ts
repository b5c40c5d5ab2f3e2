import { BalesError, ErrorCode } from '@bales/errors';
import { InferOutcome, PendingRequests, ResultMessage } from './pending-requests';

const result = (id: string): ResultMessage => ({ id, ok: true, model_id: 'm', model_version: '1', result: { values: [1] }, batch_size: 1, queued_ms: 0 });

/** Resolves with how the promise ended, so a test can tell a rejection from a result. */
const outcome = (p: Promise<InferOutcome>) =>
  p.then(
    (value) => ({ value }),
    (error: BalesError) => ({ error }),
  );

describe('PendingRequests', () => {
  afterEach(() => jest.useRealTimers());

  it('resolves a request with its result message and ignores every later answer', async () => {
    const pending = new PendingRequests();
    const answered = outcome(pending.add('a', 1000));
    expect(pending.settle(result('a'))).toBe(true);
    expect(pending.settle({ id: 'a', ok: false, code: ErrorCode.INFERENCE_FAILED, message: 'late' })).toBe(false);
    expect(pending.fail('a', new BalesError(ErrorCode.CLIENT_CLOSED, 'late'))).toBe(false);
    expect(await answered).toEqual({ value: result('a') });
    expect(pending.size).toBe(0);
  });

  it('rejects with the code and message of an error result', async () => {
    const pending = new PendingRequests();
    const answered = outcome(pending.add('a', 1000));
    pending.settle({ id: 'a', ok: false, code: ErrorCode.INVALID_INPUT, message: 'bad row' });
    const { error } = (await answered) as { error: BalesError };
    expect([error.code, error.message]).toEqual([ErrorCode.INVALID_INPUT, 'bad row']);
  });

  it("carries an error result's details, string fields only and never one that would replace the body's own", async () => {
    const pending = new PendingRequests();
    const answered = [outcome(pending.add('a', 1000)), outcome(pending.add('b', 1000)), outcome(pending.add('c', 1000))];
    pending.settle({ id: 'a', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: 'failed', details: { model_id: 'm', state: 'failed', reason: 'bad file' } });
    // As a replica of another release, or anything else writing to the channel, might send it.
    const loose = { id: 'b', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: 'failed', details: { model_id: 'm', statusCode: '200', message: 'x', error: 'x', depth: 3, nested: {} } };
    pending.settle(loose as unknown as ResultMessage);
    pending.settle({ id: 'c', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: 'failed', details: ['x'] } as unknown as ResultMessage);
    const [a, b, c] = (await Promise.all(answered)) as { error: BalesError }[];
    expect(a.error.details).toEqual({ model_id: 'm', state: 'failed', reason: 'bad file' });
    expect(b.error.details).toEqual({ model_id: 'm' });
    expect(c.error.details).toBeUndefined();
  });

  it('rejects with TIMEOUT when the deadline passes first, and drops the result that comes after', async () => {
    jest.useFakeTimers();
    const pending = new PendingRequests();
    const answered = outcome(pending.add('a', 500));
    jest.advanceTimersByTime(499);
    expect(pending.has('a')).toBe(true);
    jest.advanceTimersByTime(1);
    const { error } = (await answered) as { error: BalesError };
    expect([error.code, error.message]).toEqual([ErrorCode.TIMEOUT, 'not served within 500 ms']);
    expect(pending.settle(result('a'))).toBe(false);
  });

  it('never times out a request that was answered in time', async () => {
    jest.useFakeTimers();
    const pending = new PendingRequests();
    const answered = outcome(pending.add('a', 500));
    pending.settle(result('a'));
    jest.advanceTimersByTime(1000);
    expect(await answered).toEqual({ value: result('a') });
  });

  it('tells a settlement listener whether a processor answered: yes for a result or batch error, no for a local error', () => {
    const pending = new PendingRequests();
    const told: [string, boolean][] = [];
    for (const id of ['result', 'batch-error', 'client-gone']) {
      void outcome(pending.add(id, 1000));
      pending.onSettled(id, (served) => told.push([id, served]));
    }
    pending.settle(result('result'));
    pending.settle({ id: 'batch-error', ok: false, code: ErrorCode.INFERENCE_FAILED, message: 'boom' });
    pending.fail('client-gone', new BalesError(ErrorCode.CLIENT_CLOSED, 'gone'));
    expect(told).toEqual([
      ['result', true],
      ['batch-error', true],
      ['client-gone', false],
    ]);
  });

  it('tells a listener at once, as not served, when the request is already settled', () => {
    const pending = new PendingRequests();
    const told: boolean[] = [];
    pending.onSettled('unknown', (served) => told.push(served));
    expect(told).toEqual([false]);
  });

  it('stops accepting once shutdown begins', () => {
    const pending = new PendingRequests();
    expect(pending.accepting).toBe(true);
    pending.beginShutdown();
    expect(pending.accepting).toBe(false);
  });

  it('reports drained once every accepted request is answered', async () => {
    const pending = new PendingRequests();
    void outcome(pending.add('a', 10_000));
    const drained = pending.drained(5000);
    setTimeout(() => pending.settle(result('a')), 30);
    expect(await drained).toBe(true);
  });

  it('reports not drained when the wait ends with requests still unanswered', async () => {
    const pending = new PendingRequests();
    const left = outcome(pending.add('a', 10_000));
    expect(await pending.drained(50)).toBe(false);
    expect(pending.size).toBe(1);
    pending.fail('a', new BalesError(ErrorCode.SHUTTING_DOWN, 'x'));
    await left;
  });
});
