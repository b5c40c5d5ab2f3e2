import type { InferOutcome } from '@bales/queue';
import { lastToFinish, serverTiming } from './server-timing';

const outcome = (timing?: InferOutcome['timing']): InferOutcome => ({ id: 'r', ok: true, model_id: 'm', model_version: '1', result: { values: [1] }, batch_size: 1, queued_ms: 0, timing });
const stages = (header: string) => Object.fromEntries(header.split(', ').map((s) => [s.split(';')[0], Number(s.split('dur=')[1])]));

describe('serverTiming', () => {
  it('splits the time from receipt to settling into request, queue, batch, inference and return, adding up to total', () => {
    const origin = performance.timeOrigin;
    // Received at 10, submitted at 10.5, taken at 11.5, started at 12, ran 2 ms, settled at 14.75 (this replica's clock).
    const header = serverTiming(10, 10.5, 14.75, outcome({ fetchedAt: origin + 11.5, startedAt: origin + 12, inferenceMs: 2 }));
    const s = stages(header);
    expect(Object.keys(s)).toEqual(['request', 'queue', 'batch', 'inference', 'return', 'total']);
    expect(s.request).toBeCloseTo(0.5, 3);
    expect(s.queue).toBeCloseTo(1, 3);
    expect(s.batch).toBeCloseTo(0.5, 3);
    expect(s.inference).toBeCloseTo(2, 3);
    expect(s.return).toBeCloseTo(0.75, 3);
    expect(s.total).toBeCloseTo(4.75, 3);
  });

  it('gives only request and total for a result without usable times, as from an older replica or a malformed message', () => {
    expect(Object.keys(stages(serverTiming(0, 1, 2, outcome())))).toEqual(['request', 'total']);
    expect(Object.keys(stages(serverTiming(0, 1, 2, outcome({ fetchedAt: Number.NaN, startedAt: 1, inferenceMs: 1 }))))).toEqual(['request', 'total']);
  });

  it('never reports a negative stage when the clocks of two replicas disagree', () => {
    const origin = performance.timeOrigin;
    const s = stages(serverTiming(10, 10.5, 14, outcome({ fetchedAt: origin + 9, startedAt: origin + 12, inferenceMs: 1 })));
    expect(s.queue).toBe(0);
  });
});

describe('lastToFinish', () => {
  it('picks the row whose inference ended last, the one the answer waited for', () => {
    const rows = [outcome({ fetchedAt: 0, startedAt: 5, inferenceMs: 1 }), outcome({ fetchedAt: 0, startedAt: 3, inferenceMs: 4 }), outcome()];
    expect(lastToFinish(rows)).toBe(rows[1]);
  });
});
