import type { InferOutcome } from '@bales/queue';

const ms = (n: number) => Math.max(0, n).toFixed(3);

/**
 * A `Server-Timing` header value for one answered request, stage by stage: `request` (HTTP, validation and
 * encoding, up to the enqueue), `queue` (the write to Redis until a consumer took the job), `batch` (batching and
 * the hop to the worker thread), `inference`, `return` (the results' way back to this replica) and `total`.
 * Times are on this replica's clock, except those of the replica that ran the row: its wall clock, so stages that
 * cross replicas are only as exact as their clocks agree.
 */
export function serverTiming(receivedAt: number, submittedAt: number, settledAt: number, { timing }: InferOutcome): string {
  const request = `request;dur=${ms(submittedAt - receivedAt)}`;
  const total = `total;dur=${ms(settledAt - receivedAt)}`;
  // Result messages come through Redis: times that are not numbers are left out rather than trusted.
  if (!timing || ![timing.fetchedAt, timing.startedAt, timing.inferenceMs].every(Number.isFinite)) return `${request}, ${total}`;
  const origin = performance.timeOrigin;
  return [
    request,
    `queue;dur=${ms(timing.fetchedAt - (origin + submittedAt))}`,
    `batch;dur=${ms(timing.startedAt - timing.fetchedAt)}`,
    `inference;dur=${ms(timing.inferenceMs)}`,
    `return;dur=${ms(origin + settledAt - timing.startedAt - timing.inferenceMs)}`,
    total,
  ].join(', ');
}

/** Of a request's rows (a V2 tensor of N), the one whose inference ended last: the one its answer waited for. */
export function lastToFinish(rows: InferOutcome[]): InferOutcome {
  const end = (r: InferOutcome) => (r.timing ? r.timing.startedAt + r.timing.inferenceMs : -Infinity);
  return rows.reduce((last, r) => (end(r) > end(last) ? r : last));
}
