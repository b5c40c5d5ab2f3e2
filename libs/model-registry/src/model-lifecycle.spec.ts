import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from './input-encoder';
import { ModelLifecycle, type SessionPool } from './model-lifecycle';
import type { ModelSource } from './model-repository';
import { LoadFailure, type RunReply, type Signature, type WarmupReport } from './protocol';
import type { Batch, HeldSession, LoadedSession } from './worker-pool';

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
  /** Every load asked for, in order. */
  readonly loads: HeldSession[] = [];
  /** Weights paths that fail to load, and how; any path not in `files` is unreadable. */
  readonly failures: Record<string, LoadFailure> = {};
  /** Weights paths no made-up warm-up input fits. */
  readonly unwarmed = new Set<string>();
  readonly batches: Batch[] = [];
  recycleChecks = 0;
  holdLoads?: Promise<void>;
  holdRuns?: Promise<void>;
  failRuns?: Error;

  constructor(readonly files: Record<string, Signature>) {}

  async loadEverywhere(session: HeldSession): Promise<LoadedSession> {
    const { key, path, warmup } = session;
    this.loads.push(session);
    await this.holdLoads;
    if (this.failures[path]) throw this.failures[path];
    const signature = this.files[path];
    if (!signature) throw new LoadFailure('unreadable', 'Protobuf parsing failed.');
    this.held.set(key, path);
    const report: WarmupReport = warmup === false ? { source: 'off' } : warmup ? { source: 'config' } : { source: 'synthetic' };
    if (!warmup && this.unwarmed.has(path)) report.warning = 'no made-up input fits the model';
    return { signature, warmup: report };
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

/** Model folders as their config.json reads: a source, or the error reading it throws. */
const folders: Record<string, ModelSource | BalesError> = {};

/** Weights paths deleted since they were registered. */
const missing = new Set<string>();

/** Weights paths resolve to themselves; 'outside.onnx' lies outside MODELS_DIR. */
const repository = {
  resolveWeights: (path: string) => {
    if (path === 'outside.onnx') throw new BalesError(ErrorCode.PATH_NOT_ALLOWED, 'weights_path must lie inside MODELS_DIR');
    if (missing.has(path)) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${path} does not exist`);
    return path;
  },
  root: '',
  name: (path: string) => path,
  weightsOf: (id: string) => `${id}/model.onnx`,
  read: (id: string): ModelSource => {
    const folder = folders[id];
    if (folder instanceof BalesError) throw folder;
    return folder;
  },
};

const source = (id: string, path = 'stub.onnx'): ModelSource => ({ id, path, task: 'classification', version: 1 });
const row: EncodedRow = { buffers: [Buffer.alloc(512)], dims: [[128]] };
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('ModelLifecycle', () => {
  let pool: FakePool;
  let lifecycle: ModelLifecycle;

  beforeEach(async () => {
    for (const id of Object.keys(folders)) delete folders[id];
    missing.clear();
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

    it('keeps no trace of a registration refused before loading: a weights path outside MODELS_DIR', async () => {
      await expect(lifecycle.register({ id: 'other', weightsPath: 'outside.onnx', task: 'classification' })).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      expect(lifecycle.has('other')).toBe(false);
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

    it('asks for a weights path to hot-swap a ready model', async () => {
      await expect(lifecycle.reload('stub', undefined)).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST, message: expect.stringContaining('weights_path is required') });
      expect(lifecycle.get('stub').version).toBe('1');
    });

    it('keeps serving the old version when the new weights do not load or lie outside MODELS_DIR', async () => {
      await expect(lifecycle.reload('stub', 'garbage.onnx')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL });
      await expect(lifecycle.reload('stub', 'outside.onnx')).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      expect(lifecycle.get('stub')).toMatchObject({ version: '1', state: 'ready' });
    });
  });

  describe('failed models', () => {
    const register = (id: string, weightsPath: string) => lifecycle.register({ id, weightsPath, task: 'classification' });

    it('keeps a model whose weights do not load as failed, with the reason, beside the others', async () => {
      const reason = 'cannot load garbage.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)';
      await expect(register('bad', 'garbage.onnx')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL, message: reason });
      expect(lifecycle.has('bad')).toBe(true);
      expect(lifecycle.get('bad')).toMatchObject({ id: 'bad', state: 'failed', reason, signature: { inputs: [], outputs: [] } });
      expect(lifecycle.get('bad').loadedAt).toBeUndefined();
      expect(lifecycle.list().map((m) => [m.id, m.state])).toEqual([['stub', 'ready'], ['bad', 'failed']]);
      expect(lifecycle.sessions().map((s) => s.key)).toEqual(['stub@1']);
      await expect(lifecycle.run('stub', [row])).resolves.toMatchObject({ version: '1' });
    });

    it('answers requests and batches for a failed model with MODEL_UNAVAILABLE naming the model, its state and the reason', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      const { reason } = lifecycle.get('bad');
      const expected = { code: ErrorCode.MODEL_UNAVAILABLE, message: `model 'bad' is failed: ${reason}`, details: { model_id: 'bad', state: 'failed', reason } };
      expect(() => lifecycle.admit('bad', () => row)).toThrow(expect.objectContaining(expected));
      expect(() => lifecycle.serving('bad')).toThrow(expect.objectContaining(expected));
      await expect(lifecycle.run('bad', [row])).rejects.toMatchObject(expected);
      expect(pool.batches).toHaveLength(0);
    });

    it.each([
      ['an operator ONNX Runtime lacks', new LoadFailure('unsupported', 'No Op registered for Gelu with domain_version of 17'), 'cannot load odd.onnx: it uses an operator or opset this ONNX Runtime does not support (No Op registered for Gelu with domain_version of 17)'],
      ['a graph ONNX Runtime rejects', new LoadFailure('invalid', "Node input 'nope' is not a graph input"), "cannot load odd.onnx: ONNX Runtime rejects it as an invalid model (Node input 'nope' is not a graph input)"],
      ['an input BALES cannot feed', new LoadFailure('input_type', "input 'text' is string"), "cannot serve odd.onnx: input 'text' is string"],
      ['a worker that died while loading', new Error('session worker exited with code 1'), 'cannot load odd.onnx: session worker exited with code 1'],
    ])('names why a model failed: %s', async (_case, failure, reason) => {
      pool.failures['odd.onnx'] = failure as LoadFailure;
      await expect(register('odd', 'odd.onnx')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL, message: reason });
      expect(lifecycle.get('odd')).toMatchObject({ state: 'failed', reason });
    });

    it('fails a model whose config.json warm-up sample fails, showing the signature it read', async () => {
      pool.failures['vad.onnx'] = new LoadFailure('warmup', "config.json warm-up sample 1 failed: input 'sr' is missing", signature(512));
      await expect(register('vad', 'vad.onnx')).rejects.toMatchObject({ message: "vad.onnx loads, but config.json warm-up sample 1 failed: input 'sr' is missing" });
      expect(lifecycle.get('vad')).toMatchObject({ state: 'failed', signature: signature(512) });
    });

    it('keeps a MODELS_DIR folder whose config.json is not usable as failed, and reads it again when it is loaded again', async () => {
      folders.cfg = new BalesError(ErrorCode.INVALID_MODEL, 'cfg/config.json: task must be one of classification, regression, embedding, raw');
      await expect(lifecycle.loadFolder('cfg')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL });
      expect(lifecycle.get('cfg')).toMatchObject({ state: 'failed', reason: (folders.cfg as Error).message, version: '1' });
      expect(pool.loads.map((l) => l.path)).not.toContain('cfg/model.onnx');

      folders.cfg = { ...source('cfg', 'stub.onnx'), task: 'regression', version: 4, warmup: false };
      await expect(lifecycle.reload('cfg', undefined)).resolves.toMatchObject({ modelId: 'cfg', oldVersion: '1', newVersion: '4' });
      expect(lifecycle.get('cfg')).toMatchObject({ state: 'ready', task: 'regression', version: '4', warmup: { source: 'off' }, loadedAt: expect.any(String) });
      expect(lifecycle.get('cfg').reason).toBeUndefined();
      await expect(lifecycle.run('cfg', [row])).resolves.toMatchObject({ version: '4' });
    });

    it('loads a failed registration again from the weights path it was given, or from a new one', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      pool.files['garbage.onnx'] = signature(128);
      await expect(lifecycle.reload('bad', undefined)).resolves.toMatchObject({ modelId: 'bad', newVersion: '1' });
      expect(lifecycle.get('bad')).toMatchObject({ state: 'ready', task: 'classification' });

      await register('worse', 'garbage2.onnx').catch(() => undefined);
      await lifecycle.reload('worse', 'wide.onnx');
      expect(lifecycle.get('worse')).toMatchObject({ state: 'ready', signature: signature(256) });
    });

    it('keeps a failed model as it was when the weights path given to load it again is refused, and with the new reason when it fails again', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      const { reason } = lifecycle.get('bad');
      await expect(lifecycle.reload('bad', 'outside.onnx')).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      expect(lifecycle.get('bad')).toMatchObject({ state: 'failed', reason });
      pool.failures['odd.onnx'] = new LoadFailure('unsupported', 'opset 99');
      await expect(lifecycle.reload('bad', 'odd.onnx')).rejects.toMatchObject({ code: ErrorCode.INVALID_MODEL });
      expect(lifecycle.get('bad')).toMatchObject({ state: 'failed', reason: expect.stringContaining('opset 99') });
    });

    it('checks the file of a failed model again before loading it: one deleted since leaves it failed, saying so', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      missing.add('garbage.onnx');
      await expect(lifecycle.reload('bad', undefined)).rejects.toMatchObject({ code: ErrorCode.FILE_NOT_FOUND });
      expect(lifecycle.get('bad')).toMatchObject({ state: 'failed', reason: "the model's file garbage.onnx is missing" });
      expect(pool.loads.filter((l) => l.key === 'bad@1')).toHaveLength(1);
    });

    it('shows a failed model that is loading again as loading: unavailable, and a second load or a delete meanwhile is a conflict', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      pool.files['garbage.onnx'] = signature(128);
      const held = gate();
      pool.holdLoads = held.opened;
      const loading = lifecycle.reload('bad', undefined);
      expect(lifecycle.get('bad')).toMatchObject({ state: 'loading' });
      expect(() => lifecycle.admit('bad', () => row)).toThrow(expect.objectContaining({ code: ErrorCode.MODEL_UNAVAILABLE, message: "model 'bad' is loading" }));
      await expect(lifecycle.reload('bad', undefined)).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      await expect(lifecycle.unload('bad')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      await expect(register('bad', 'stub.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      held.open();
      await loading;
      expect(lifecycle.get('bad').state).toBe('ready');
    });

    it('registers an id again in the place of a failed model, and refuses it while the model is ready', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      await expect(register('bad', 'stub_v2.onnx')).resolves.toMatchObject({ id: 'bad', state: 'ready' });
      await expect(register('bad', 'stub.onnx')).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
    });

    it('removes a failed model at once on unload', async () => {
      await register('bad', 'garbage.onnx').catch(() => undefined);
      await expect(lifecycle.unload('bad')).resolves.toEqual({ modelId: 'bad', version: '1', drainedRequests: 0, drainMs: 0 });
      expect(lifecycle.has('bad')).toBe(false);
      expect(() => lifecycle.get('bad')).toThrow(expect.objectContaining({ code: ErrorCode.MODEL_NOT_FOUND }));
    });
  });

  describe('warm-up', () => {
    it("loads every version, and every worker's copy, with config.json's warm-up setting", async () => {
      const samples = [{ inputs: { input: { fill: 'zeros' as const, shape: [1, 128] } } }];
      await lifecycle.load({ ...source('warm'), warmup: samples });
      await lifecycle.reload('warm', 'stub_v2.onnx');
      expect(pool.loads.filter((l) => l.key.startsWith('warm@')).map((l) => l.warmup)).toEqual([samples, samples]);
      expect(lifecycle.sessions().find((s) => s.key === 'warm@2')).toEqual({ key: 'warm@2', path: 'stub_v2.onnx', warmup: samples });
      expect(lifecycle.get('warm').warmup).toEqual({ source: 'config' });
    });

    it('serves a model no made-up warm-up input fits as ready, with the warning in its info', async () => {
      pool.files['picky.onnx'] = signature(16);
      pool.unwarmed.add('picky.onnx');
      await expect(lifecycle.load(source('picky', 'picky.onnx'))).resolves.toMatchObject({ state: 'ready', warmup: { source: 'synthetic', warning: 'no made-up input fits the model' } });
      await expect(lifecycle.run('picky', [row])).resolves.toMatchObject({ version: '1' });
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
  describe('versions side by side, for fleet-wide calls', () => {
    it('prepares a version beside the served one, serves it only from its commit, and keeps the old one for its queued work until released', async () => {
      await lifecycle.prepare({ id: 'stub', version: 2, weightsPath: 'stub_v2.onnx', origin: 'api' });
      expect(lifecycle.get('stub').version).toBe('1');
      expect(lifecycle.runnable()).toEqual([{ id: 'stub', version: '1' }, { id: 'stub', version: '2' }]);
      // Work a replica that already committed queued under v2 runs here before this one commits.
      expect((await lifecycle.run('stub', [row], '2')).version).toBe('2');
      lifecycle.commit('stub', 2);
      expect(lifecycle.admit('stub', () => undefined).model.version).toBe('2');
      expect((await lifecycle.run('stub', [row], '1')).version).toBe('1');
      expect([...pool.held.keys()]).toEqual(['stub@1', 'stub@2']);
      lifecycle.release('stub', 1);
      await settled();
      expect([...pool.held.keys()]).toEqual(['stub@2']);
      expect(lifecycle.runnable()).toEqual([{ id: 'stub', version: '2' }]);
      await expect(lifecycle.run('stub', [row], '1')).rejects.toMatchObject({ code: ErrorCode.MODEL_UNAVAILABLE });
    });

    it('releases a kept version only after the batch still running on it', async () => {
      await lifecycle.prepare({ id: 'stub', version: 2, weightsPath: 'stub_v2.onnx', origin: 'api' });
      lifecycle.commit('stub', 2);
      const held = gate();
      pool.holdRuns = held.opened;
      const running = lifecycle.run('stub', [row], '1');
      lifecycle.release('stub', 1);
      await settled();
      expect(pool.held.has('stub@1')).toBe(true);
      held.open();
      await running;
      await settled();
      expect(pool.held.has('stub@1')).toBe(false);
    });

    it('aborts a prepared version, and a new id never committed leaves no trace', async () => {
      await lifecycle.prepare({ id: 'stub', version: 2, weightsPath: 'stub_v2.onnx', origin: 'api' });
      await lifecycle.prepare({ id: 'fresh', version: 1, weightsPath: 'stub_v2.onnx', origin: 'api', task: 'raw' });
      expect(lifecycle.has('fresh')).toBe(false);
      expect(lifecycle.runnable()).toContainEqual({ id: 'fresh', version: '1' });
      await lifecycle.abort('stub', 2);
      await lifecycle.abort('fresh', 1);
      await settled();
      expect([...pool.held.keys()]).toEqual(['stub@1']);
      expect(lifecycle.runnable()).toEqual([{ id: 'stub', version: '1' }]);
    });

    it('shows a new id from its commit on', async () => {
      await lifecycle.prepare({ id: 'fresh', version: 4, weightsPath: 'stub_v2.onnx', origin: 'api', task: 'raw' });
      lifecycle.commit('fresh', 4);
      expect(lifecycle.get('fresh')).toMatchObject({ version: '4', state: 'ready', task: 'raw' });
    });

    it('prepares nothing twice for a version it holds, and refuses another version while one is prepared', async () => {
      expect(await lifecycle.prepare({ id: 'stub', version: 1, origin: 'api' })).toEqual({ loadMs: 0 });
      await lifecycle.prepare({ id: 'stub', version: 2, weightsPath: 'stub_v2.onnx', origin: 'api' });
      expect(await lifecycle.prepare({ id: 'stub', version: 2, weightsPath: 'stub_v2.onnx', origin: 'api' })).toEqual({ loadMs: 0 });
      await expect(lifecycle.prepare({ id: 'stub', version: 3, weightsPath: 'stub_v2.onnx', origin: 'api' })).rejects.toMatchObject({ code: ErrorCode.MODEL_CONFLICT });
      expect(pool.loads.filter((l) => l.key === 'stub@2')).toHaveLength(1);
    });

    it('stops admission for a delete, runs accepted work, and removes the model once its version is released', async () => {
      expect(lifecycle.stopAdmission('stub')).toEqual({ version: '1', pending: 0 });
      expect(() => lifecycle.admit('stub', () => undefined)).toThrow(expect.objectContaining({ code: ErrorCode.MODEL_NOT_FOUND }));
      expect((await lifecycle.run('stub', [row], '1')).version).toBe('1');
      lifecycle.release('stub', 1);
      expect(lifecycle.has('stub')).toBe(false);
    });

    it('keeps a model whose file is not the fleet\'s as failed, held or not, and releases its sessions', async () => {
      lifecycle.fail('stub', 'stub.onnx differs from the fleet\'s file');
      lifecycle.fail('absent', 'absent.onnx is missing', { version: 3, weightsPath: 'absent.onnx', origin: 'api' });
      await settled();
      expect(lifecycle.get('stub')).toMatchObject({ state: 'failed', reason: "stub.onnx differs from the fleet's file" });
      expect(lifecycle.get('absent')).toMatchObject({ state: 'failed', version: '3' });
      expect(pool.held.size).toBe(0);
      expect(lifecycle.runnable()).toEqual([]);
    });
  });
});
