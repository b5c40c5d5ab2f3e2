import type { EncodedRow } from '@bales/model-registry';

export const INFER_QUEUE = 'infer';
export const INFER_JOB = 'infer';

/**
 * One queued row, kept compact because every byte crosses Redis twice:
 * [request_id, enqueued at (epoch ms), deadline (epoch ms), base64 bytes per input, item shape per input],
 * plus a trailing 1 when the row wants every output tensor rather than the task's result.
 */
export type JobRow = [string, number, number, string[], number[][]] | [string, number, number, string[], number[][], 1];

/** One BullMQ job: the concurrent requests of one model and priority from one replica. */
export interface InferJobData {
  /** model id */
  m: string;
  /** instance id of the replica holding the clients' connections */
  o: string;
  r: JobRow[];
}

/** A row decoded by the consumer, with everything the batch runner needs. */
export interface QueuedRow {
  requestId: string;
  modelId: string;
  origin: string;
  priority: number;
  enqueuedAt: number;
  deadline: number;
  row: EncodedRow;
}

export function encodeRow(requestId: string, enqueuedAt: number, deadline: number, row: EncodedRow): JobRow {
  const base: JobRow = [requestId, enqueuedAt, deadline, row.buffers.map((b) => b.toString('base64')), row.dims];
  return row.raw ? [...base, 1] : base;
}

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((n) => Number.isInteger(n) && n > 0);

/**
 * Validates a job read back from Redis: Redis is outside the HTTP validation, so nothing in it is trusted.
 * Throws with the reason when the job is malformed.
 */
export function decodeJob(data: unknown, priority: number): QueuedRow[] {
  const job = data as Partial<InferJobData> | null;
  if (!job || typeof job !== 'object' || typeof job.m !== 'string' || typeof job.o !== 'string' || !Array.isArray(job.r)) {
    throw new Error('malformed infer job: expected {m, o, r[]}');
  }
  return job.r.map((r, i) => {
    if (!Array.isArray(r) || r.length < 5 || r.length > 6 || (r.length === 6 && r[5] !== 1)) throw new Error(`malformed infer job row ${i}`);
    const [requestId, enqueuedAt, deadline, inputs, dims] = r;
    if (typeof requestId !== 'string' || !Number.isFinite(enqueuedAt) || !Number.isFinite(deadline)) throw new Error(`malformed infer job row ${i}: id or times`);
    if (!Array.isArray(inputs) || !inputs.every((s) => typeof s === 'string')) throw new Error(`malformed infer job row ${i}: inputs`);
    if (!Array.isArray(dims) || dims.length !== inputs.length || !dims.every(isNumberArray)) throw new Error(`malformed infer job row ${i}: dims`);
    return {
      requestId,
      modelId: job.m!,
      origin: job.o!,
      priority,
      enqueuedAt,
      deadline,
      row: { buffers: inputs.map((s) => Buffer.from(s, 'base64')), dims, ...(r.length === 6 ? { raw: true } : {}) },
    };
  });
}
