/**
 * The floor under the gateway / ceiling ratio, for `npm run bench`: the least the parts below the HTTP stack cost
 * on the event-loop thread per request, each measured alone in its own process by its own benchmark.
 * - the queue hop: `bench:queue` at MAX_BATCH_SIZE rows per job, the most the gateway puts in one job;
 * - the batcher, the registry's admission and the worker-thread hand-off: `bench:batcher`, at the gateway's settings.
 * Both run with the V8 flags the gateway runs with in production, as every server of the benchmark does.
 * Added to the Nest stack's own cost from the same run, they give the best ratio a gateway built this way could
 * reach if it did nothing else.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { productionNodeFlags } from '../../test/support/production-env';
import { ROOT, median } from './common';

export interface Floor {
  rowsPerJob: number;
  /** Event-loop µs per row of the queue hop alone (bench:queue). */
  queueUsPerRow: number;
  /** Event-loop µs per request of the batcher and the worker hand-off alone (bench:batcher). */
  batcherUsPerRequest: number;
}

const runBench = (script: string, args: string[]) =>
  promisify(execFile)(process.execPath, [...productionNodeFlags(), '-r', '@swc-node/register', join(__dirname, script), ...args], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });

/** Runs both benchmarks, about 64,000 queue rows and 50,000 batcher requests per `scale`, `repeats` times each. */
export async function measureFloor(scale: number, repeats: number, maxBatchSize: number): Promise<Floor> {
  const dir = mkdtempSync(join(tmpdir(), 'bales-floor-'));
  const count = (n: number) => String(Math.max(1, Math.round(n * scale)));
  await runBench('queue.ts', ['--sizes', String(maxBatchSize), '--rows', count(64_000), '--repeats', String(repeats), '--results', dir]);
  await runBench('batcher.ts', ['--requests', count(50_000), '--repeats', String(repeats), '--results', dir]);
  const queue = JSON.parse(readFileSync(join(dir, 'queue.json'), 'utf8')) as { results: { rowsPerJob: number; mainThreadUsPerRow: number }[] };
  const batcher = JSON.parse(readFileSync(join(dir, 'batcher.json'), 'utf8')) as { runs: { mainThreadUsPerRequest: number }[] };
  return {
    rowsPerJob: queue.results[0].rowsPerJob,
    queueUsPerRow: queue.results[0].mainThreadUsPerRow,
    batcherUsPerRequest: median(batcher.runs.map((r) => r.mainThreadUsPerRequest)),
  };
}
