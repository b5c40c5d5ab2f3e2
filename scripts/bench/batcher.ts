/**
 * npm run bench:batcher [-- --requests 50000 --concurrency 256 --repeats 5 --warmup-s 3 --model stub|heavy]
 *
 * The DynamicBatcher, the ModelRegistry and its worker threads running a real ONNX model: no HTTP, no
 * Redis. Every request is admitted (checked and encoded) by the registry, batched, run and answered with its own row, as the
 * processor does it. Three phases, all in one process:
 * - saturation: a closed loop keeping `concurrency` requests outstanding, over `requests` requests;
 * - light load: 50 req/s, open loop, with the adaptive policy (dispatch at once while a worker is idle);
 * - the same light load through a fixed-window batcher (no idle dispatch), the baseline it replaces.
 * Environment variables (MAX_BATCH_SIZE, BATCH_WINDOW_MS, THREAD_POOL_SIZE, ...) are read as the gateway reads them.
 */
import { Logger } from '@nestjs/common';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '@bales/config';
import { EncodedRow, ModelRegistry, RowResult } from '@bales/model-registry';
import { DynamicBatcher } from '@bales/queue';
import { EXAMPLE_INPUT } from '../../test/support/example-input';
import { argValue, machine, mainThreadNs, median, modelArg, percentile, prepareModel, round, thousands, writeResult } from './common';

interface Item {
  priority: number;
  row: EncodedRow;
  resolve: (outcome: { result: RowResult; batchSize: number; inferenceMs: number }) => void;
}

interface PhaseResult {
  requests: number;
  elapsedS: number;
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  avgBatch: number;
  modelCalls: number;
  avgInferenceMs: number;
  /** What the process went through meanwhile: event-loop stalls, CPU used (in cores), and preemptions. */
  eventLoopDelayP99Ms?: number;
  eventLoopDelayMaxMs?: number;
  /** Garbage collection on the event-loop thread: total pause and longest one. */
  gcTotalMs?: number;
  gcMaxMs?: number;
  cpuCores?: number;
  /** CPU time of the event-loop thread per request, in µs: the batcher's and the registry's share of the gateway's. */
  mainThreadUsPerRequest?: number;
  involuntaryContextSwitches?: number;
}

/**
 * The policy the adaptive batcher replaces (TorchServe's and BentoML's): a batch leaves when it is full or
 * when its first item has waited the window, whether or not a worker is idle.
 */
function fixedWindow(windowMs: number, run: (key: string, items: Item[]) => Promise<void>) {
  let waiting: Item[] = [];
  let timer: NodeJS.Timeout | undefined;
  const send = (key: string) => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting;
    waiting = [];
    void run(key, batch);
  };
  return {
    add(key: string, maxBatchSize: number, items: Item[]) {
      waiting.push(...items);
      if (waiting.length >= maxBatchSize) send(key);
      else timer ??= setTimeout(() => send(key), windowMs);
    },
  };
}

/** The run whose throughput is the median, with the median P50 and P99 of all runs. */
function medianRun(runs: PhaseResult[]): PhaseResult {
  const byThroughput = [...runs].sort((a, b) => a.throughput - b.throughput);
  return { ...byThroughput[(runs.length - 1) >> 1], p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)) };
}

const THROUGHPUT_TARGET = 80_000;
const P99_TARGET_MS = 5;

async function main(): Promise<void> {
  const model = prepareModel(modelArg());
  const requests = Number(argValue('requests') ?? 50_000);
  const config = loadConfig({ ...process.env, MODELS_DIR: model.modelsDir, LOG_LEVEL: 'warn' });
  const repeats = Number(argValue('repeats') ?? 5);
  const warmupS = Number(argValue('warmup-s') ?? 3);
  const concurrency = Number(argValue('concurrency') ?? 2 * config.THREAD_POOL_SIZE * config.MAX_BATCH_SIZE);
  Logger.overrideLogger(['error', 'warn']);
  const registry = new ModelRegistry(config);
  await registry.onModuleInit();
  const maxBatch = registry.get(model.id).maxBatchSize;

  /** The DynamicBatcher, or with `fixed` the fixed-window policy it replaces, feeding the registry and counting what it ran. */
  const makeBatcher = (policy: 'adaptive' | 'fixed') => {
    const stats = { calls: 0, rows: 0, inferenceMs: 0 };
    const run = async (_key: string, items: Item[]) => {
      const out = await registry.run(model.id, items.map((i) => i.row));
      stats.calls++;
      stats.rows += items.length;
      stats.inferenceMs += out.inferenceMs;
      items.forEach((item, i) => item.resolve({ result: out.results[i], batchSize: items.length, inferenceMs: out.inferenceMs }));
    };
    const batcher = policy === 'adaptive' ? new DynamicBatcher<Item>({ windowMs: config.BATCH_WINDOW_MS, slots: registry.slots, run }) : fixedWindow(config.BATCH_WINDOW_MS, run);
    const infer = () => {
      const started = performance.now();
      const { row, release } = registry.admit(model.id, { input: EXAMPLE_INPUT });
      const done = () => {
        release();
        return performance.now() - started;
      };
      return new Promise<number>((resolve) => batcher.add(model.id, maxBatch, [{ priority: 2, row, resolve: () => resolve(done()) }]));
    };
    return { stats, infer };
  };

  const summarise = (latencies: number[], elapsedMs: number, stats: { calls: number; rows: number; inferenceMs: number }): PhaseResult => {
    const sorted = Float64Array.from(latencies).sort();
    return {
      requests: latencies.length,
      elapsedS: round(elapsedMs / 1000, 3),
      throughput: round(latencies.length / (elapsedMs / 1000), 0),
      p50: round(percentile(sorted, 50), 3),
      p90: round(percentile(sorted, 90), 3),
      p99: round(percentile(sorted, 99), 3),
      max: round(sorted[sorted.length - 1], 3),
      avgBatch: round(stats.rows / stats.calls, 1),
      modelCalls: stats.calls,
      avgInferenceMs: round(stats.inferenceMs / stats.calls, 3),
    };
  };

  const closedLoop = async (total: number): Promise<PhaseResult> => {
    const { stats, infer } = makeBatcher('adaptive');
    const latencies: number[] = [];
    let issued = 0;
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const gc = { total: 0, max: 0 };
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gc.total += e.duration;
        gc.max = Math.max(gc.max, e.duration);
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    const usage = process.resourceUsage();
    const threadNs = mainThreadNs();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (issued < total) {
          issued++;
          latencies.push(await infer());
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const mainThreadUsPerRequest = round((mainThreadNs() - threadNs) / 1000 / total, 2);
    loopDelay.disable();
    await new Promise((r) => setImmediate(r)); // the observer is called back asynchronously
    gcObserver.disconnect();
    const after = process.resourceUsage();
    return {
      ...summarise(latencies, elapsedMs, stats),
      eventLoopDelayP99Ms: round(loopDelay.percentile(99) / 1e6, 2),
      eventLoopDelayMaxMs: round(loopDelay.max / 1e6, 2),
      gcTotalMs: round(gc.total, 2),
      gcMaxMs: round(gc.max, 2),
      cpuCores: round((after.userCPUTime + after.systemCPUTime - usage.userCPUTime - usage.systemCPUTime) / 1000 / elapsedMs, 2),
      ...(Number.isFinite(mainThreadUsPerRequest) && { mainThreadUsPerRequest }),
      involuntaryContextSwitches: after.involuntaryContextSwitches - usage.involuntaryContextSwitches,
    };
  };

  const openLoop = async (policy: 'adaptive' | 'fixed', ratePerS: number, seconds: number): Promise<PhaseResult> => {
    const { stats, infer } = makeBatcher(policy);
    const total = ratePerS * seconds;
    const started = performance.now();
    const latencies = await Promise.all(
      Array.from({ length: total }, (_, i) => new Promise<number>((resolve) => setTimeout(() => resolve(infer()), (i * 1000) / ratePerS))),
    );
    return summarise(latencies, performance.now() - started, stats);
  };

  // Warm-up, not counted: JIT, worker threads, ONNX Runtime arenas. Throughput keeps climbing over the first seconds
  // of load (docs/benchmarks.md), so a fixed few thousand requests would measure the warm-up instead.
  const warmupStarted = performance.now();
  let warmupRequests = 0;
  do warmupRequests += (await closedLoop(Math.min(2000, requests))).requests;
  while (performance.now() - warmupStarted < warmupS * 1000);
  const warmup = { seconds: round((performance.now() - warmupStarted) / 1000, 2), requests: warmupRequests };
  // A run lasts a fraction of a second on cores other work may share, so one run is noise: report the median run.
  const runs: PhaseResult[] = [];
  for (let i = 0; i < repeats; i++) runs.push(await closedLoop(requests));
  const saturation = medianRun(runs);
  const light = await openLoop('adaptive', 50, 4);
  const fixed = await openLoop('fixed', 50, 4);
  await registry.onApplicationShutdown();

  const pass = saturation.throughput >= THROUGHPUT_TARGET && saturation.p99 < P99_TARGET_MS;
  console.log(`=== Batcher Benchmark ===
Requests: ${thousands(saturation.requests)}
Elapsed: ${saturation.elapsedS.toFixed(2)}s
Throughput: ${thousands(saturation.throughput)} req/s
P50 latency: ${saturation.p50.toFixed(2)}ms
P99 latency: ${saturation.p99.toFixed(2)}ms
Avg batch size: ${saturation.avgBatch.toFixed(1)}
Model calls: ${saturation.modelCalls} (vs ${saturation.requests} individual = ${(saturation.requests / saturation.modelCalls).toFixed(1)}x reduction)
Target: >${thousands(THROUGHPUT_TARGET)} req/s, P99 <${P99_TARGET_MS}ms
Pass: ${pass ? 'PASS' : 'FAIL'}`);
  console.log(`
Median of ${repeats} runs of ${thousands(requests)} requests, ${concurrency} outstanding; per run: ${runs.map((r) => `${thousands(r.throughput)} req/s P99 ${r.p99.toFixed(2)}ms`).join(', ')}
Warm-up, not counted: ${warmup.seconds.toFixed(1)} s, ${thousands(warmup.requests)} requests
Event-loop thread CPU per request (median): ${median(runs.map((r) => r.mainThreadUsPerRequest ?? NaN)).toFixed(2)} us
Settings: model ${model.id}, MAX_BATCH_SIZE=${config.MAX_BATCH_SIZE}, BATCH_WINDOW_MS=${config.BATCH_WINDOW_MS}, THREAD_POOL_SIZE=${config.THREAD_POOL_SIZE}`);
  console.log(`
Light load, 50 req/s for 4 s (model ${model.id}, inference ${light.avgInferenceMs.toFixed(3)} ms per call):
  adaptive (dispatch at once while a worker is idle): P50 ${light.p50.toFixed(2)}ms  P99 ${light.p99.toFixed(2)}ms  avg batch ${light.avgBatch.toFixed(1)}
  fixed ${config.BATCH_WINDOW_MS} ms window (baseline, same run):      P50 ${fixed.p50.toFixed(2)}ms  P99 ${fixed.p99.toFixed(2)}ms  avg batch ${fixed.avgBatch.toFixed(1)}`);

  const file = writeResult(model.choice === 'stub' ? 'batcher.json' : `batcher-${model.choice}.json`, {
    benchmark: 'batcher',
    date: new Date().toISOString(),
    machine: machine(),
    model: model.id,
    warmup,
    settings: { MAX_BATCH_SIZE: config.MAX_BATCH_SIZE, BATCH_WINDOW_MS: config.BATCH_WINDOW_MS, THREAD_POOL_SIZE: config.THREAD_POOL_SIZE, concurrency },
    target: { throughput: THROUGHPUT_TARGET, p99Ms: P99_TARGET_MS },
    pass,
    saturation,
    runs,
    lightLoad: { ratePerS: 50, adaptive: light, fixedWindow: fixed },
  });
  console.log(`\nwrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
