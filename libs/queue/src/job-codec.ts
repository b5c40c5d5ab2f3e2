import type { Command } from 'ioredis';
import type { EncodedRow } from '@bales/model-registry';
import { epochNow } from './clock';
import { UncopiedCommand } from './uncopied-command';

export const INFER_QUEUE = 'infer';
export const INFER_JOB = 'infer';

/**
 * Each model version has a queue of its own: a replica fetches only the work it holds that version for, and a
 * version's sessions can go once its queue is empty. BullMQ allows no ':' in a name; model ids hold no '/'.
 */
export const versionQueue = (modelId: string, version: string) => `${INFER_QUEUE}/${modelId}/${version}`;

/**
 * Jobs whose rows carry fewer bytes than this keep them inline as base64; bigger ones keep them in a Redis key of
 * their own, since base64 inside JSON costs the event loop more than the extra command (docs/benchmarks.md).
 */
export const INLINE_ROW_BYTES = 8192;
/** A key of row bytes outlives its rows' latest deadline by this much, in case its job is lost. */
export const ROW_BYTES_GRACE_MS = 10_000;

/**
 * One queued row, kept compact because every byte crosses Redis twice:
 * [request_id, enqueued at (epoch ms), deadline (epoch ms), inputs, item shape per input], plus a trailing 1 when
 * the row wants every output tensor rather than the task's result. Inputs are base64 strings inline, or each
 * input's byte length when the job's bytes are in its own key.
 */
export type JobRow = [string, number, number, string[] | number[], number[][]] | [string, number, number, string[] | number[], number[][], 1];

/** One BullMQ job: the concurrent requests of one model and priority from one replica. */
export interface InferJobData {
  /** model id */
  m: string;
  /** the model version the rows were admitted under */
  v: string;
  /** instance id of the replica holding the clients' connections */
  o: string;
  r: JobRow[];
  /** the Redis key holding every row's input bytes back to back, in row then input order, when not inline */
  b?: string;
}

/** A row as the producer holds it until its job is written. */
export interface OutgoingRow {
  requestId: string;
  enqueuedAt: number;
  deadline: number;
  row: EncodedRow;
}

/** The bytes of a job's rows, stored under `data.b`: the concatenation of `parts`, in order. */
export interface RowBytes {
  key: string;
  parts: Buffer[];
  ttlMs: number;
}

/** A job ready to write: its data, and the bytes to store under `data.b` first when it has one. */
export interface EncodedJob {
  data: InferJobData;
  bytes?: RowBytes;
}

/** What writeRowBytes needs of an ioredis client. */
interface RowBytesClient {
  sendCommand(command: Command): unknown;
}

/**
 * Stores a job's row bytes: the first part with SET and the expiry, each further one APPENDed after it, each part
 * written to the socket as it is (UncopiedCommand) rather than copied into its command, and never concatenated
 * first: every image-sized copy is external memory that brings V8's next full GC closer. Sent in order on one
 * connection, before the job.
 */
export function writeRowBytes(client: RowBytesClient, { key, parts, ttlMs }: RowBytes): Promise<unknown>[] {
  const utf8 = { replyEncoding: 'utf8' } as const;
  const commands = [new UncopiedCommand('set', [key, parts[0], 'PX', String(ttlMs)], utf8), ...parts.slice(1).map((part) => new UncopiedCommand('append', [key, part], utf8))];
  for (const command of commands) client.sendCommand(command);
  return commands.map((command) => command.promise);
}

/** A row decoded by the consumer, with everything the batch runner needs. */
export interface QueuedRow {
  requestId: string;
  modelId: string;
  /** The model version the row was admitted under, and runs on. */
  version: string;
  origin: string;
  priority: number;
  enqueuedAt: number;
  deadline: number;
  /** When this replica's consumer took the row's job (epoch ms): the end of its time in the queue. */
  fetchedAt: number;
  row: EncodedRow;
}

/** A job as the consumer reads it: its rows, and where their bytes are when not inline. */
export interface DecodedJob {
  rows: QueuedRow[];
  /** Set when the rows' bytes are in a key of their own: `attachRowBytes` fills each row's buffers from it. */
  bytesKey?: string;
  /** Each row's input byte lengths, as the job declares them, when the bytes are in their own key. */
  lengths?: number[][];
}

/** A row in the inline layout: its input bytes as base64. */
export function encodeRow(requestId: string, enqueuedAt: number, deadline: number, row: EncodedRow): JobRow {
  const base: JobRow = [requestId, enqueuedAt, deadline, row.buffers.map((b) => b.toString('base64')), row.dims];
  return row.raw ? [...base, 1] : base;
}

/** A buffer at least this big is written with a command of its own rather than copied into one with its neighbours. */
export const OWN_COMMAND_BYTES = 32 * 1024;

/**
 * The buffers as the parts writeRowBytes sends: a big one as it is, runs of small ones between them concatenated,
 * so a job of small rows still takes one command and an image row is never copied for it.
 */
function partsOf(buffers: Buffer[]): Buffer[] {
  const parts: Buffer[] = [];
  let small: Buffer[] = [];
  const flush = () => {
    if (small.length > 0) parts.push(small.length === 1 ? small[0] : Buffer.concat(small));
    small = [];
  };
  for (const b of buffers) {
    if (b.byteLength < OWN_COMMAND_BYTES) small.push(b);
    else {
      flush();
      parts.push(b);
    }
  }
  flush();
  return parts;
}

/**
 * Encodes one job's rows: inline below INLINE_ROW_BYTES, otherwise their bytes, one after another, under a key of
 * their own (named by `newKey`) that expires ROW_BYTES_GRACE_MS after the latest deadline, the job keeping byte lengths.
 */
export function encodeJob(modelId: string, version: string, origin: string, rows: OutgoingRow[], newKey: () => string, now: number, inlineBelow = INLINE_ROW_BYTES): EncodedJob {
  let total = 0;
  for (const r of rows) for (const b of r.row.buffers) total += b.byteLength;
  if (total < inlineBelow) return { data: { m: modelId, v: version, o: origin, r: rows.map((r) => encodeRow(r.requestId, r.enqueuedAt, r.deadline, r.row)) } };
  const buffers: Buffer[] = [];
  let latest = now;
  const jobRows = rows.map((r): JobRow => {
    buffers.push(...r.row.buffers);
    latest = Math.max(latest, r.deadline);
    const base: JobRow = [r.requestId, r.enqueuedAt, r.deadline, r.row.buffers.map((b) => b.byteLength), r.row.dims];
    return r.row.raw ? [...base, 1] : base;
  });
  const key = newKey();
  return { data: { m: modelId, v: version, o: origin, r: jobRows, b: key }, bytes: { key, parts: partsOf(buffers), ttlMs: Math.ceil(latest - now + ROW_BYTES_GRACE_MS) } };
}

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((n) => Number.isInteger(n) && n > 0);
const isLength = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0;

/**
 * Validates a job read back from Redis: Redis is outside the HTTP validation, so nothing in it is trusted.
 * Throws with the reason when the job is malformed. Rows of a job whose bytes are in their own key come back
 * with empty buffers until `attachRowBytes` fills them.
 */
export function decodeJob(data: unknown, priority: number, fetchedAt = epochNow()): DecodedJob {
  const job = data as Partial<InferJobData> | null;
  if (!job || typeof job !== 'object' || typeof job.m !== 'string' || typeof job.v !== 'string' || typeof job.o !== 'string' || !Array.isArray(job.r)) {
    throw new Error('malformed infer job: expected {m, v, o, r[]}');
  }
  if (job.b !== undefined && (typeof job.b !== 'string' || job.b === '')) throw new Error('malformed infer job: bytes key');
  const binary = job.b !== undefined;
  const rows = job.r.map((r, i): QueuedRow => {
    if (!Array.isArray(r) || r.length < 5 || r.length > 6 || (r.length === 6 && r[5] !== 1)) throw new Error(`malformed infer job row ${i}`);
    const [requestId, enqueuedAt, deadline, inputs, dims] = r;
    if (typeof requestId !== 'string' || !Number.isFinite(enqueuedAt) || !Number.isFinite(deadline)) throw new Error(`malformed infer job row ${i}: id or times`);
    if (!Array.isArray(inputs) || !(inputs as unknown[]).every(binary ? isLength : (s) => typeof s === 'string')) throw new Error(`malformed infer job row ${i}: inputs`);
    if (!Array.isArray(dims) || dims.length !== inputs.length || !dims.every(isNumberArray)) throw new Error(`malformed infer job row ${i}: dims`);
    const buffers = binary ? [] : (inputs as string[]).map((s) => Buffer.from(s, 'base64'));
    const row: QueuedRow = { requestId, modelId: job.m!, version: job.v!, origin: job.o!, priority, enqueuedAt, deadline, fetchedAt, row: { buffers, dims, ...(r.length === 6 ? { raw: true } : {}) } };
    return row;
  });
  return binary ? { rows, bytesKey: job.b, lengths: job.r.map((r) => r[3] as number[]) } : { rows };
}

/** Each row's inputs as views of the parts, in order; undefined when an input would span two parts. */
function viewsOf(parts: Buffer[], lengths: number[][]): Buffer[][] | undefined {
  const rows: Buffer[][] = [];
  let [part, offset] = [0, 0];
  for (const inputs of lengths) {
    const row: Buffer[] = [];
    for (const n of inputs) {
      while (part < parts.length - 1 && offset === parts[part].byteLength) [part, offset] = [part + 1, 0];
      if (offset + n > parts[part].byteLength) return undefined;
      row.push(parts[part].subarray(offset, (offset += n)));
    }
    rows.push(row);
  }
  return rows;
}

/**
 * Fills the buffers of a binary job's rows from the bytes read from its key, or from the parts its producer wrote
 * them from (kept in memory on that replica), as views without a copy. Returns the problem when the bytes are
 * missing or do not add up to the lengths the job declares; the model's own check (dims x element size) follows as
 * for inline rows.
 */
export function attachRowBytes(job: DecodedJob, bytes: Buffer | Buffer[] | null): string | undefined {
  if (!bytes) return "the rows' input bytes are no longer in Redis (expired or removed)";
  const parts = Array.isArray(bytes) ? bytes : [bytes];
  const total = parts.reduce((sum, p) => sum + p.byteLength, 0);
  const lengths = job.lengths ?? [];
  const declared = lengths.reduce((sum, ls) => ls.reduce((a, n) => a + n, sum), 0);
  if (declared !== total) return `the rows' input bytes in Redis are ${total} bytes, the job declares ${declared}`;
  // Each input lies within one part when the parts are the producer's own (partsOf); otherwise they are joined.
  const views = viewsOf(parts.length > 0 ? parts : [Buffer.alloc(0)], lengths) ?? viewsOf([Buffer.concat(parts)], lengths)!;
  job.rows.forEach((r, i) => {
    r.row.buffers = views[i];
  });
  return undefined;
}
