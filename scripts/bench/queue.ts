/**
 * npm run bench:queue [-- --rows 100000 --repeats 3 --sizes 1,8,32,128 --row-bytes 512 --layout auto|base64|binary]
 *
 * The queue hop alone: the gateway's jobs (its row encoding, `Queue.add`, the BatchingWorker's fetches, the row
 * decoding and BullMQ's completion) through a throwaway redis-server, producer and consumer in one process, with
 * no HTTP, no batcher and no model. For each number of rows per job it reports the event-loop thread's CPU per
 * row: the least any gateway built on BullMQ jobs that carry their rows spends per request, whatever else it does.
 * Set against the gateway benchmark's Nest stack and ceiling (docs/benchmarks.md), it bounds the gateway / ceiling ratio.
 * `--row-bytes` sets each row's input size (512, the stub's; 110592, a [3,48,192] float32 image); `--layout` forces
 * the rows' bytes inline as base64 or into a key of their own, where the gateway picks by size.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BatchingWorker, INFER_JOB, INFER_QUEUE, INFER_QUEUE_SETTINGS, INFER_WORKER_SETTINGS, INLINE_ROW_BYTES, attachRowBytes, decodeJob, encodeJob, writeRowBytes } from '@bales/queue';
import { EXAMPLE_INPUT } from '../../test/support/example-input';
import { TestRedis } from '../../test/support/redis-server';
import { argValue, machine, mainThreadNs, median, round, thousands, writeResult } from './common';

/** What one run of one job size measured. */
interface SizeResult {
  rowsPerJob: number;
  rows: number;
  rowsPerSecond: number;
  mainThreadUsPerRow: number;
  /** What one row costs in Redis: its share of the job's JSON, plus its bytes when they are in their own key. */
  storedBytesPerRow: number;
}

/** Jobs being written at once, as the gateway has a few groups (models, priorities) in flight. */
const WRITERS = 4;
/** Fetches the worker may keep out: the processor's room when no batch waits. */
const ROOM = 64;

async function main(): Promise<void> {
  const totalRows = Number(argValue('rows') ?? 100_000);
  const repeats = Number(argValue('repeats') ?? 3);
  const sizes = (argValue('sizes') ?? '1,8,32,128').split(',').map(Number);
  const rowBytes = Number(argValue('row-bytes') ?? 512);
  const layout = argValue('layout') ?? 'auto';
  if (!['auto', 'base64', 'binary'].includes(layout) || !(rowBytes >= 4 && rowBytes % 4 === 0)) throw new Error('--layout is auto, base64 or binary; --row-bytes a multiple of 4');
  const inlineBelow = layout === 'auto' ? INLINE_ROW_BYTES : layout === 'base64' ? Infinity : 0;
  const redis = await TestRedis.start();
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const queue = new Queue(INFER_QUEUE, { connection, prefix: 'bench', ...INFER_QUEUE_SETTINGS });
  const values = new Float32Array(rowBytes / 4).map((_, i) => EXAMPLE_INPUT[i % EXAMPLE_INPUT.length]);
  const row = { buffers: [Buffer.from(values.buffer)], dims: [[values.length]] };
  const client = (await queue.client) as unknown as Redis;
  let keys = 0;
  let rowsSeen = 0;
  let expected = Infinity;
  let allSeen = () => {};
  const worker = new BatchingWorker(
    INFER_QUEUE,
    async (job) => {
      // As the consumer takes a job: its rows, then their bytes from their key, deleted once the job is done.
      const decoded = decodeJob(job.data, job.opts.priority ?? 0);
      if (decoded.bytesKey) {
        const workerClient = (await worker.client) as unknown as Redis;
        const problem = attachRowBytes(decoded, await workerClient.getBuffer(decoded.bytesKey));
        if (problem) throw new Error(problem);
        void workerClient.del(decoded.bytesKey);
      }
      rowsSeen += decoded.rows.length;
      if (rowsSeen >= expected) allSeen();
    },
    { connection, prefix: 'bench', ...INFER_WORKER_SETTINGS },
    () => ROOM,
  );
  worker.run().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });

  let stored = 0;
  const addJob = (rowsPerJob: number) => {
    const now = Date.now();
    const rows = Array.from({ length: rowsPerJob }, () => ({ requestId: randomUUID(), enqueuedAt: now, deadline: now + 30_000, row }));
    const job = encodeJob('stub_v1', '1', 'bench', rows, () => `bench:${INFER_QUEUE}:rows:${keys++}`, now, inlineBelow);
    // As the producer writes a job: its bytes' key first, on the same connection, so it is there before the job.
    if (job.bytes) for (const written of writeRowBytes(client, job.bytes)) void written;
    stored += JSON.stringify(job.data).length + (job.bytes?.parts.reduce((n, part) => n + part.byteLength, 0) ?? 0);
    return queue.add(INFER_JOB, job.data, { priority: 2 });
  };
  const runSize = async (rowsPerJob: number, rows: number): Promise<SizeResult> => {
    const jobs = Math.max(1, Math.round(rows / rowsPerJob));
    rowsSeen = 0;
    stored = 0;
    expected = jobs * rowsPerJob;
    const seen = new Promise<void>((resolve) => (allSeen = resolve));
    const cpu = mainThreadNs();
    const started = performance.now();
    let written = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (written < jobs) {
          written++;
          await addJob(rowsPerJob);
        }
      }),
    );
    await seen;
    const seconds = (performance.now() - started) / 1000;
    return { rowsPerJob, rows: expected, rowsPerSecond: round(expected / seconds, 0), mainThreadUsPerRow: round((mainThreadNs() - cpu) / 1000 / expected, 2), storedBytesPerRow: Math.round(stored / expected) };
  };

  console.log(`[queue] ${machine().cores} cores; ${thousands(totalRows)} rows per run (at most 20,000 jobs), ${repeats} runs per job size; ${thousands(rowBytes)} bytes per row, layout ${layout}`);
  for (const size of sizes) await runSize(size, Math.min(totalRows, 2_000 * size) / 10); // warm-up: JIT and Redis
  const results: (SizeResult & { runs: number[] })[] = [];
  for (const size of sizes) {
    const runs: SizeResult[] = [];
    for (let i = 0; i < repeats; i++) runs.push(await runSize(size, Math.min(totalRows, 20_000 * size)));
    const us = runs.map((r) => r.mainThreadUsPerRow);
    const mid = runs.find((r) => r.mainThreadUsPerRow === median(us))!;
    results.push({ ...mid, runs: us });
    console.log(`[queue] ${size} rows per job: ${median(us).toFixed(2)} us per row (runs ${us.join(', ')}), ${thousands(mid.rowsPerSecond)} rows/s`);
  }
  await worker.close();
  await queue.close();
  await redis.stop();

  console.log('\n=== Queue hop alone: event-loop CPU per row ===');
  console.log('rows/job   us/row    rows/s');
  for (const r of results) console.log(`${String(r.rowsPerJob).padStart(8)} ${r.mainThreadUsPerRow.toFixed(2).padStart(8)} ${thousands(r.rowsPerSecond).padStart(9)}`);
  console.log(`Stored in Redis per row (job JSON + bytes key): ${results.map((r) => `${thousands(r.storedBytesPerRow)} B at ${r.rowsPerJob} rows/job`).join(', ')}`);
  const file = writeResult('queue.json', { benchmark: 'queue', date: new Date().toISOString(), machine: machine(), writers: WRITERS, room: ROOM, rowBytes, layout, results });
  console.log(`\nwrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
