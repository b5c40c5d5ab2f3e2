import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from './input-encoder';
import { ModelLifecycle, type SessionPool } from './model-lifecycle';
import type { ModelSource } from './model-repository';
import type { RunReply, Signature } from './protocol';
import type { Batch } from './worker-pool';

const signature = (width: number, batch: number | string = 'batch'): Signature => ({
  inputs: [{ name: 'input', type: 'float32', shape: [batch, width] }],
  outputs: [{ name: 'probabilities', type: 'float32', shape: [batch, 10] }],
});

/** A gate a test opens by hand: what a held load or batch waits on. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Worker threads in memory: which sessions they hold, and loads and batches a test can hold or fail. */
class FakePool implements SessionPool {
  /** Session key to weights path, as every worker would hold them. */
  readonly held = new Map<string, string>();
  readonly batches: Batch[] = [];
  recycleChecks = 0;
  holdLoads?: Promise<void>;
  holdRuns?: Promise<void>;
  failRuns?: Error;

  constructor(private readonly files: Record<string, Signature>) {}

  async loadEverywhere(key: string, path: string): Promise<Signature> {
    await this.holdLoads;
    const loaded = this.files[path];
    if (!loaded) throw new Error('protobuf parsing failed');
    this.held.set(key, path);
    return loaded;
  }

  async unloadEverywhere(key: string): Promise<void> {
    this.held.delete(key);
  }

  async run(batch: Batch): Promise<RunReply> {
    this.batches.push(batch);
    await this.holdRuns;
    if (this.failRuns) throw this.failRuns;
    return { results: batch.rows.map(() => ({ values: [1] })), startedAt: 0, inferenceMs: 1 };
  }

  recycleIfDue(): void {
    this.recycleChecks++;
  }
}

/** Weights paths resolve to themselves; 'outside.onnx' lies outside MODELS_DIR. */
const repository = {
  resolveWeights: (path: string) => {
    if (path === 'outside.onnx') throw new BalesError(ErrorCode.PATH_NOT_ALLOWED, 'weights_path must lie inside MODELS_DIR');
    return path;
  },
  name: (path: string) => path,
};

const source = (id: string, path = 'stub.onnx'): ModelSource => ({ id, path, task: 'classification', version: 1 });
const row: EncodedRow = { buffers: [Buffer.alloc(512)], dims: [[128]] };
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('ModelLifecycle', () => {
  let pool: FakePool;
  let lifecycle: ModelLifecycle;

  beforeEach(async () => {
    pool = new FakePool({ 'stub.onnx': signature(128), 'stub_v2.onnx': signature(128), 'wide.onnx': signature(256), 'fixed.onnx': signature(8, 1) });
    lifecycle = new ModelLifecycle(pool, repository, 32);
    await lifecycle.load(source('stub'));
  });

  describe('loading', () => {
    it('serves a loaded model as ready at version 1, with the signature its weights declare', () => {
      expect(lifecycle.get('stub')).toMatchObject({ id: 'stub', version: '1', state: 'ready', signature: signature(128), requestsServed: 0, requestsPending: 0 });
      expect(pool.held).toEqual(new Map([['stub@1', 'stub.onnx']]));
    });

    it('hides a model while its first version loads, and refuses to register its id twice meanwhile', async () => {
      const held = gate();
      pool.holdLoads = held.opened;
      const loading = lifecycle.register({ id: 'next', weightsPath: 'stub_v2.onnx', task: 'classification' });
      expect(lifecycle.has('next')).toBe(false);
      expect(() => lifecycle.get('next')).toThrow(expect.objectContaining({ code: ErrorCode.MODEL_NOT_FOUND }));
      expect(lifecycle.list().map((m) => m.id)).toEqual(['stub']);
      expect(lifecycle.sessions()).toEqual([{ key: 'stub@1', path: 'stub.onnx' }]);
      await expect(lifecycle.register({ id: 'next', weightsPath: 'stub.onnx', task: 'classification' })).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      held.open();
      await expect(loading).resolves.toMatchObject({ id: 'next', state: 'ready' });
      expect(lifecycle.list().map((m) => m.id)).toEqual(['stub', 'next']);
    });

    it('keeps no trace of a model whose weights do not load, so its id can be registered again', async () => {
      await expect(lifecycle.register({ id: 'bad', weightsPath: 'garbage.onnx', task: 'classification' })).rejects.toMatchObject({
        code: ErrorCode.INVALID_MODEL,
        message: 'cannot load garbage.onnx as an ONNX model: protobuf parsing failed',
      });
      expect(lifecycle.has('bad')).toBe(false);
      await expect(lifecycle.register({ id: 'bad', weightsPath: 'stub.onnx', task: 'classification' })).resolves.toMatchObject({ state: 'ready' });
    });

    it('answers a conflict before looking at the weights path of an id already taken', async () => {
      await expect(lifecycle.register({ id: 'stub', weightsPath: 'outside.onnx', task: 'classification' })).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      await expect(lifecycle.register({ id: 'other', weightsPath: 'outside.onnx', task: 'classification' })).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
    });

    it('bounds rows per batch by MAX_BATCH_SIZE and the model, and to 1 when the batch dimension is fixed', async () => {
      expect(lifecycle.get('stub').maxBatchSize).toBe(32);
      await lifecycle.load({ ...source('small'), maxBatchSize: 8 });
      await lifecycle.load(source('fixed', 'fixed.onnx'));
      expect(lifecycle.get('small').maxBatchSize).toBe(8);
      expect(lifecycle.get('fixed').maxBatchSize).toBe(1);
    });
  });

  describe('leases', () => {
    it('counts an admitted request as pending until it is released, once however often release() is called', () => {
      const first = lifecycle.admit('stub', (inputs) => inputs.map((s) => s.name));
      const second = lifecycle.admit('stub', () => row);
      expect(first.encoded).toEqual(['input']);
      expect(lifecycle.get('stub').requestsPending).toBe(2);
      first.release();
      first.release();
      expect(lifecycle.get('stub').requestsPending).toBe(1);
      second.release();
      expect(lifecycle.get('stub').requestsPending).toBe(0);
    });

    it('takes no lease when the request does not fit the inputs', () => {
      const misfit = new BalesError(ErrorCode.INVALID_INPUT, 'payload.input: required');
      expect(() => lifecycle.admit('stub', () => { throw misfit; })).toThrow(misfit);
      expect(lifecycle.get('stub').requestsPending).toBe(0);
    });
  });

  describe('batches', () => {
    it('runs rows on the current version and counts them as served', async () => {
      await expect(lifecycle.run('stub', [row, row])).resolves.toMatchObject({ version: '1', results: [{ values: [1] }, { values: [1] }] });
      expect(pool.batches[0]).toMatchObject({ key: 'stub@1', task: 'classification', inputs: signature(128).inputs });
      expect(lifecycle.get('stub').requestsServed).toBe(2);
    });

    it('reports a failed batch as INFERENCE_FAILED, naming the version', async () => {
      pool.failRuns = new Error('worker crashed');
      await expect(lifecycle.run('stub', [row])).rejects.toMatchObject({ code: ErrorCode.INFERENCE_FAILED, message: 'inference failed on stub@1: worker crashed' });
      expect(lifecycle.get('stub').requestsServed).toBe(0);
    });

    it('answers MODEL_NOT_FOUND for a model it does not serve', async () => {
      await expect(lifecycle.run('made_up', [row])).rejects.toMatchObject({ code: ErrorCode.MODEL_NOT_FOUND });
    });
  });

  describe('hot swap', () => {
    it('switches to the next version, releases the old one and checks whether the worker threads are due for recycling', async () => {
      await expect(lifecycle.reload('stub', 'stub_v2.onnx')).resolves.toMatchObject({ modelId: 'stub', oldVersion: '1', newVersion: '2', loadMs: expect.any(Number) });
      expect(lifecycle.get('stub')).toMatchObject({ version: '2', state: 'ready' });
      expect(pool.held).toEqual(new Map([['stub@2', 'stub_v2.onnx']]));
      expect(pool.recycleChecks).toBe(1);
    });

    it('finishes a batch already running on the old version, and releases that version after it', async () => {
      const held = gate();
      pool.holdRuns = held.opened;
      const running = lifecycle.run('stub', [row]);
      await lifecycle.reload('stub', 'stub_v2.onnx');
      expect([...pool.held.keys()]).toEqual(['stub@1', 'stub@2']);
      held.open();
      await expect(running).resolves.toMatchObject({ version: '1' });
      await settled();
      expect([...pool.held.keys()]).toEqual(['stub@2']);
    });

    it('stays ready on the old version while the next one loads, and refuses a second reload meanwhile', async () => {
      const held = gate();
      pool.holdLoads = held.opened;
      const first = lifecycle.reload('stub', 'stub_v2.onnx');
      expect(lifecycle.get('stub')).toMatchObject({ version: '1', state: 'ready' });
      await expect(lifecycle.run('stub', [row])).resolves.toMatchObject({ version: '1' });
      await expect(lifecycle.reload('stub', 'stub_v2.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT, message: "model 'stub' is already being reloaded" });
      held.open();
      await expect(first).resolves.toMatchObject({ newVersion: '2' });
      await expect(lifecycle.reload('stub', 'stub.onnx')).resolves.toMatchObject({ newVersion: '3' });
    });

    it('refuses weights with another signature unless asked, and keeps serving the old version', async () => {
      await expect(lifecycle.reload('stub', 'wide.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT, message: expect.stringContaining('input:float32[?,128] -> input:float32[?,256]') });
      expect(lifecycle.get('stub')).toMatchObject({ version: '1', signature: signature(128) });
      expect([...pool.held.keys()]).toEqual(['stub@1']);
      await expect(lifecycle.reload('stub', 'wide.onnx', true)).resolves.toMatchObject({ newVersion: '2' });
      expect(lifecycle.get('stub').signature).toEqual(signature(256));
    });

    it('keeps serving the old version when the new weights do not load or lie outside MODELS_DIR', async () => {
      await expect(lifecycle.reload('stub', 'garbage.onnx')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL });
      await expect(lifecycle.reload('stub', 'outside.onnx')).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      expect(lifecycle.get('stub')).toMatchObject({ version: '1', state: 'ready' });
    });
  });

  describe('draining', () => {
    it('stops admitting at once, waits for accepted requests and running batches, then releases the sessions', async () => {
      const accepted = lifecycle.admit('stub', () => row);
      const held = gate();
      pool.holdRuns = held.opened;
      const running = lifecycle.run('stub', [row]);
      let outcome: unknown;
      const unloading = lifecycle.unload('stub').then((o) => (outcome = o));

      expect(lifecycle.get('stub')).toMatchObject({ state: 'draining', requestsPending: 1 });
      expect(() => lifecycle.admit('stub', () => row)).toThrow(expect.objectContaining({ code: ErrorCode.MODEL_NOT_FOUND }));
      await expect(lifecycle.reload('stub', 'stub_v2.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_NOT_FOUND });
      accepted.release();
      await settled();
      expect(outcome).toBeUndefined();

      held.open();
      await running;
      await unloading;
      expect(outcome).toEqual({ modelId: 'stub', version: '1', drainedRequests: 1, drainMs: expect.any(Number) });
      expect(lifecycle.has('stub')).toBe(false);
      expect(pool.held.size).toBe(0);
    });

    it('answers MODEL_NOT_FOUND for a second unload of the same model', async () => {
      const first = lifecycle.unload('stub');
      await expect(lifecycle.unload('stub')).rejects.toMatchObject({ code: ErrorCode.MODEL_NOT_FOUND });
      await expect(first).resolves.toMatchObject({ drainedRequests: 0 });
    });
  });
});
