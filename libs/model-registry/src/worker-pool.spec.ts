import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT } from '../../../test/support/gateway';

/**
 * V8's memory reducer starts about 8 s after an isolate's last full GC, when the isolate allocates little. Loaded,
 * warmed and then idle, session workers are such isolates: without the pool switching the reducer off, a registry
 * left idle for 10 s shows full, compacting "(reduce)" GCs in its workers.
 */
const IDLE_MS = 10_500;
const IDLE_REGISTRY = `
  const { loadConfig } = require('./libs/config/src');
  const { ModelRegistry } = require('./libs/model-registry/src/model-registry');
  (async () => {
    const registry = new ModelRegistry(loadConfig({ MODELS_DIR: 'models', THREAD_POOL_SIZE: '2', LOG_LEVEL: 'error' }));
    await registry.onModuleInit();
    await new Promise((resolve) => setTimeout(resolve, ${IDLE_MS}));
    await registry.onApplicationShutdown();
  })();
`;

/** A registry shut down while a long batch runs: it must answer the batch and exit, not abort. */
const SHUTDOWN_MID_RUN = `
  const { mkdirSync, mkdtempSync, writeFileSync } = require('node:fs');
  const { join } = require('node:path');
  const { tmpdir } = require('node:os');
  const { loadConfig } = require('./libs/config/src');
  const { ModelRegistry } = require('./libs/model-registry/src/model-registry');
  const { encodeModel, mlpClassifier } = require('./scripts/onnx/onnx-writer');
  (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-shutdown-'));
    mkdirSync(join(dir, 'heavy'));
    writeFileSync(join(dir, 'heavy/model.onnx'), encodeModel(mlpClassifier('heavy', [128, 2048, 2048, 2048, 10], 7)));
    const registry = new ModelRegistry(loadConfig({ MODELS_DIR: dir, DEFAULT_MODEL_ID: 'heavy', THREAD_POOL_SIZE: '1', LOG_LEVEL: 'error' }));
    await registry.onModuleInit();
    const row = (r) => ({ buffers: [Buffer.from(Float32Array.from({ length: 128 }, (_, i) => Math.sin(i * r)).buffer)], dims: [[128]] });
    // 2,048 rows of about 8.6 M multiply-adds each: hundreds of milliseconds of ONNX Runtime on any host.
    const running = registry.run('heavy', Array.from({ length: 2048 }, (_, r) => row(r)));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const closed = registry.onApplicationShutdown();
    // A batch that comes while the running one finishes is refused, not sent to a thread about to stop.
    const late = await registry.run('heavy', [row(1)]).then(() => 'ran', (err) => err.message);
    await closed;
    console.log('answered ' + (await running).results.length + ' rows; a later batch: ' + late);
  })();
`;

describe('WorkerPool', () => {
  it('lets a running batch finish before its thread stops, rather than abort the process, and refuses new ones meanwhile', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['-r', '@swc-node/register', '-e', SHUTDOWN_MID_RUN], {
      cwd: ROOT,
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
      timeout: 60_000,
    });
    expect(stdout).toContain('answered 2048 rows; a later batch: inference failed on heavy@1: the worker threads are shutting down');
  }, 60_000);

  it("keeps V8's memory reducer from pausing session workers with full GCs", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--trace-gc', '-r', '@swc-node/register', '-e', IDLE_REGISTRY], {
      cwd: ROOT,
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
      timeout: 60_000,
    });
    const gcLines = stdout.split('\n').filter((line) => / ms: (Scavenge|Mark-Compact)/.test(line));
    const isolate = (line: string) => /\[\d+:(0x[0-9a-f]+)\]/.exec(line)?.[1];
    // The main thread collects first, before any worker exists; its isolate predates the switch (see worker-pool.ts).
    const main = isolate(gcLines[0]);
    const workerLines = gcLines.filter((line) => isolate(line) !== main);
    // The trace is there to read: both workers did collect, with ordinary GCs.
    expect(new Set(workerLines.map(isolate)).size).toBe(2);
    expect(workerLines.filter((line) => line.includes('(reduce)'))).toEqual([]);
  }, 60_000);
});
