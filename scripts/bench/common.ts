/** What the benchmarks share: the models they run, percentiles, the machine, thread CPU, and where results go. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { HEAVY_MODEL_ID, writeHeavyModel, writeStubModels } from '../generate-models';

export const ROOT = join(__dirname, '..', '..');
/** Where results go: bench-results/, or `--results DIR`. */
export const RESULTS_DIR = resolve(argValue('results') ?? join(ROOT, 'bench-results'));

export type ModelChoice = 'stub' | 'heavy';

export interface BenchModel {
  choice: ModelChoice;
  id: string;
  /** A MODELS_DIR holding only this model, so the gateway loads nothing else. */
  modelsDir: string;
}

/** Writes the chosen model into a scratch folder of its own (the heavy one takes a few seconds, once). */
export function prepareModel(choice: ModelChoice): BenchModel {
  const modelsDir = join(tmpdir(), `bales-bench-${choice}`);
  if (choice === 'heavy') {
    if (!existsSync(join(modelsDir, HEAVY_MODEL_ID, 'model.onnx'))) writeHeavyModel(modelsDir);
    return { choice, id: HEAVY_MODEL_ID, modelsDir };
  }
  writeStubModels(modelsDir);
  return { choice, id: 'stub_v1', modelsDir };
}

/** Reads `--name value` and `--flag` from argv. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const next = process.argv[i + 1];
  return next === undefined || next.startsWith('--') ? 'true' : next;
}

export function modelArg(): ModelChoice {
  const model = argValue('model') ?? 'stub';
  if (model !== 'stub' && model !== 'heavy') throw new Error(`--model must be stub or heavy, not ${model}`);
  return model;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
export const thousands = (n: number) => Math.round(n).toLocaleString('en-US');

export function machine(): { cores: number; cpu: string; node: string; platform: string } {
  return { cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` };
}

/** The results folder, created on first use (a fresh clone has none). */
export function resultsPath(name: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  return join(RESULTS_DIR, name);
}

/** Writes data as JSON, or a string as it is, into the results folder; returns the path to print. */
export function writeResult(name: string, data: unknown): string {
  const path = resultsPath(name);
  writeFileSync(path, typeof data === 'string' ? data : JSON.stringify(data, null, 2) + '\n');
  return relative(process.cwd(), path) || path;
}

/** CPU time this process's main (event-loop) thread has run so far, in ns, from the kernel's scheduler statistics; NaN off Linux. */
export function mainThreadNs(): number {
  try {
    return Number(readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}
