import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { loadConfig } from '@bales/config';
import { ErrorCode } from '@bales/errors';
import { encodeModel, mlpClassifier } from '../../../scripts/onnx/onnx-writer';
import { stateModel } from '../../../test/support/models';
import { ModelRegistry } from './model-registry';

const ROOT = join(__dirname, '..', '..', '..');
const input = (seed: number) => Float32Array.from({ length: 128 }, (_, i) => Math.sin(i * seed));
const row = (x: Float32Array) => ({ buffers: [Buffer.from(x.buffer)], dims: [[128]] });

/** A model repository in a temp folder: the shipped stub, its v2 weights, and a compute-heavy MLP. */
function repository(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bales-registry-'));
  mkdirSync(join(dir, 'stub_v1'));
  copyFileSync(join(ROOT, 'models/stub_v1/model.onnx'), join(dir, 'stub_v1/model.onnx'));
  copyFileSync(join(ROOT, 'models/stub_v1/config.json'), join(dir, 'stub_v1/config.json'));
  copyFileSync(join(ROOT, 'models/stub_v2.onnx'), join(dir, 'stub_v2.onnx'));
  mkdirSync(join(dir, 'heavy'));
  writeFileSync(join(dir, 'heavy/model.onnx'), encodeModel(mlpClassifier('heavy', [128, 2048, 2048, 2048, 10], 7)));
  writeFileSync(join(dir, 'wide.onnx'), encodeModel(mlpClassifier('wide', [256, 10], 9)));
  mkdirSync(join(dir, 'vad'));
  writeFileSync(join(dir, 'vad/model.onnx'), encodeModel(stateModel()));
  writeFileSync(join(dir, 'vad/config.json'), JSON.stringify({ task: 'raw' }));
  writeFileSync(join(dir, 'garbage.onnx'), 'this is not an onnx file');
  writeFileSync(join(tmpdir(), 'bales-outside.onnx'), 'outside');
  symlinkSync(join(tmpdir(), 'bales-outside.onnx'), join(dir, 'escape.onnx'));
  return dir;
}

async function direct(path: string, x: Float32Array): Promise<number[]> {
  const session = await InferenceSession.create(path);
  try {
    const out = await session.run({ input: new Tensor('float32', x, [1, 128]) });
    return Array.from(out.probabilities.data as Float32Array);
  } finally {
    // Released here, not by the garbage collector, whose finalizers would stall a later test's event loop.
    await session.release();
  }
}

describe('ModelRegistry', () => {
  let dir: string;
  let registry: ModelRegistry;

  beforeAll(async () => {
    dir = repository();
    registry = new ModelRegistry(loadConfig({ MODELS_DIR: dir, THREAD_POOL_SIZE: '2' }));
    await registry.onModuleInit();
  });
  afterAll(() => registry.onApplicationShutdown());

  it('loads every model folder with its signature read from the ONNX file', () => {
    expect(registry.list().map((m) => m.id)).toEqual(['heavy', 'stub_v1', 'vad']);
    const stub = registry.get('stub_v1');
    expect(stub.signature.inputs).toEqual([{ name: 'input', type: 'float32', shape: ['batch', 128] }]);
    expect(stub.signature.outputs).toEqual([{ name: 'probabilities', type: 'float32', shape: ['batch', 10] }]);
    expect(stub).toMatchObject({ task: 'classification', version: '1', maxBatchSize: 32 });
  });

  it('answers each row of a batch with the argmax and probability ONNX Runtime computes directly', async () => {
    const xs = [input(1), input(2), input(3)];
    const outcome = await registry.run('stub_v1', xs.map(row));
    expect(outcome.results).toHaveLength(3);
    for (let i = 0; i < xs.length; i++) {
      const probs = await direct(join(dir, 'stub_v1/model.onnx'), xs[i]);
      const label = probs.indexOf(Math.max(...probs));
      expect(outcome.results[i]).toEqual({ label, confidence: expect.closeTo(probs[label], 6) });
    }
  });

  it('gives each batch in flight its own input memory: concurrent batches of a four-input model answer as ONNX Runtime does directly', async () => {
    // A state model: samples [batch, 3] (an odd byte count, so the int64 input after it needs aligning), sr int64
    // with no batch axis, and states h and c [2, batch, 64] batched on axis 1. Memory reused while a batch was
    // still in flight would hand one batch's inputs to another.
    const samples = (seed: number) => Float32Array.from({ length: 3 }, (_, i) => Math.cos(seed + i));
    const state = (seed: number) => Float32Array.from({ length: 128 }, (_, i) => Math.sin(seed * 7 + i) / 2);
    const vadRow = (seed: number) => ({
      buffers: [samples(seed), BigInt64Array.from([16000n]), state(seed), state(-seed)].map((t) => Buffer.from(t.buffer)),
      dims: [[3], [], [2, 64], [2, 64]],
    });
    const session = await InferenceSession.create(join(dir, 'vad/model.onnx'));
    const expected = async (seed: number) => {
      const out = await session.run({
        input: new Tensor('float32', samples(seed), [1, 3]),
        sr: new Tensor('int64', BigInt64Array.from([16000n]), []),
        h: new Tensor('float32', state(seed), [2, 1, 64]),
        c: new Tensor('float32', state(-seed), [2, 1, 64]),
      });
      return { output: Array.from(out.output.data as Float32Array), hn: Array.from(out.hn.data as Float32Array) };
    };
    // Batches of 1 to 5 rows, all sent at once, so each worker thread holds several.
    const batches = Array.from({ length: 24 }, (_, b) => Array.from({ length: (b % 5) + 1 }, (_, r) => 100 * b + r + 1));
    const outcomes = await Promise.all(batches.map((seeds) => registry.run('vad', seeds.map(vadRow))));
    try {
      for (const [b, seeds] of batches.entries()) {
        for (const [r, seed] of seeds.entries()) {
          const got = outcomes[b].results[r] as { outputs: Record<string, { data: number[] }> };
          const want = await expected(seed);
          expect(got.outputs.output.data).toEqual(want.output.map((v) => expect.closeTo(v, 5)));
          expect(got.outputs.hn.data).toEqual(want.hn.map((v) => expect.closeTo(v, 5)));
        }
      }
    } finally {
      await session.release();
    }
  });

  it('keeps answering batches of every size while input memory of outgrown sizes is dropped and forgotten', async () => {
    // Rows of 512 bytes: batches of 1 to 800 rows need memory of 64 KB to 512 KB. Each thread keeps two free, so
    // the smaller ones are dropped on the way, and the workers are told to forget them with a later batch.
    const sizes = [1, 200, 400, 800, 3, 150, 700, 1, 600, 2];
    const batchOf = (n: number) => Array.from({ length: n }, (_, i) => row(input(n + i)));
    const oneByOne = [];
    for (const n of sizes) oneByOne.push(await registry.run('stub_v1', batchOf(n)));
    const atOnce = await Promise.all(sizes.map((n) => registry.run('stub_v1', batchOf(n))));
    for (const outcomes of [oneByOne, atOnce]) {
      for (const [k, n] of sizes.entries()) {
        expect(outcomes[k].results).toHaveLength(n);
        const last = await direct(join(dir, 'stub_v1/model.onnx'), input(2 * n - 1));
        expect((outcomes[k].results[n - 1] as { confidence: number }).confidence).toBeCloseTo(Math.max(...last), 5);
      }
    }
  });

  it('keeps the event loop free while a long batch runs in a worker thread', async () => {
    const batch = Array.from({ length: 2048 }, (_, i) => row(input(i + 1)));
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const started = performance.now();
    const outcome = await registry.run('heavy', batch);
    const elapsed = performance.now() - started;
    delay.disable();
    expect(outcome.results).toHaveLength(2048);
    // The batch takes far longer than any stall the event loop saw: it did not run on this thread.
    expect(elapsed).toBeGreaterThan(100);
    console.log("DELAY", (delay.max / 1e6).toFixed(0), elapsed.toFixed(0));
    expect(delay.max / 1e6).toBeLessThan(elapsed / 3);
  });

  it('hot-swaps to new weights and reports both versions', async () => {
    const x = input(5);
    const before = await registry.run('stub_v1', [row(x)]);
    const swap = await registry.reload('stub_v1', join(dir, 'stub_v2.onnx'));
    expect(swap).toMatchObject({ modelId: 'stub_v1', oldVersion: '1', newVersion: '2' });
    const after = await registry.run('stub_v1', [row(x)]);
    expect(after.version).toBe('2');
    const v2 = await direct(join(dir, 'stub_v2.onnx'), x);
    expect((after.results[0] as { confidence: number }).confidence).toBeCloseTo(Math.max(...v2), 6);
    expect(after.results[0]).not.toEqual(before.results[0]);
  });

  it('finishes batches already running on the old version when a reload switches', async () => {
    const running = registry.run('heavy', Array.from({ length: 128 }, (_, i) => row(input(i + 1))));
    const swap = registry.reload('heavy', join(dir, 'heavy/model.onnx'));
    const [outcome, swapped] = await Promise.all([running, swap]);
    expect(outcome.results).toHaveLength(128);
    expect(outcome.version).toBe(swapped.oldVersion);
  });

  it.each([
    ['a path escaping with ../', '../../etc/passwd', ErrorCode.PATH_NOT_ALLOWED],
    ['an absolute path outside', '/etc/hostname', ErrorCode.PATH_NOT_ALLOWED],
    ['a symlink pointing outside', 'escape.onnx', ErrorCode.PATH_NOT_ALLOWED],
    ['a missing file', 'missing.onnx', ErrorCode.FILE_NOT_FOUND],
    ['a file that is not ONNX', 'garbage.onnx', ErrorCode.INVALID_MODEL],
  ])('refuses %s and keeps serving the old version', async (_case, path, code) => {
    const { version } = registry.get('stub_v1');
    await expect(registry.reload('stub_v1', path)).rejects.toMatchObject({ code });
    expect(registry.get('stub_v1').version).toBe(version);
    await expect(registry.run('stub_v1', [row(input(1))])).resolves.toMatchObject({ version });
  });

  it('refuses weights with another signature unless asked to allow it', async () => {
    await expect(registry.reload('stub_v1', 'wide.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT, message: expect.stringContaining('input:float32[?,256]') });
    expect(registry.get('stub_v1').signature.inputs[0].shape).toEqual(['batch', 128]);
  });

  it('serialises reloads of one model: a second one at the same time gets a conflict', async () => {
    const first = registry.reload('stub_v1', join(dir, 'stub_v2.onnx'));
    await expect(registry.reload('stub_v1', join(dir, 'stub_v2.onnx'))).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
    await first;
  });
});
