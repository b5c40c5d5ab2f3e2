import { Logger } from '@nestjs/common';
import { relative } from 'node:path';
import { BalesError, ErrorCode } from '@bales/errors';
import type { EncodedRow } from './input-encoder';
import type { ModelRepository, ModelSource } from './model-repository';
import type { BatchOutcome, ModelInfo, RegisterRequest, ReloadOutcome, UnloadOutcome } from './model-types';
import { ModelState } from './model-types';
import type { Signature, Task, TensorSpec } from './protocol';
import type { HeldSession, WorkerPool } from './worker-pool';

/** What the lifecycle needs of the worker threads. */
export type SessionPool = Pick<WorkerPool, 'loadEverywhere' | 'unloadEverywhere' | 'run' | 'recycleIfDue'>;

interface ModelEntry {
  id: string;
  task: Task;
  labels?: string[];
  configMaxBatch?: number;
  state: ModelState;
  /** The version served, the session key every worker holds it under, and its weights. */
  version: number;
  key: string;
  path: string;
  signature: Signature;
  /** ISO 8601, written once per load: info() runs on every request. */
  loadedAt: string;
  /** The version a hot swap is loading beside the served one; a second reload is refused meanwhile. */
  nextVersion?: number;
  served: number;
  /** Requests admitted on this replica and not answered yet: a DELETE waits for them. */
  outstanding: number;
  onIdle?: () => void;
}

const NO_SIGNATURE: Signature = { inputs: [], outputs: [] };
const sessionKey = (id: string, version: number) => `${id}@${version}`;
const notRegistered = (id: string) => new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
const roundMs = (ms: number) => Math.round(ms * 1000) / 1000;

/**
 * The models' lives once their weights are found: loading, versions, hot swaps, draining, and the leases and
 * pinned batches that decide when a version's sessions can be released.
 */
export class ModelLifecycle {
  private readonly logger = new Logger(ModelLifecycle.name);
  private readonly models = new Map<string, ModelEntry>();
  /** Batches in flight per session key; a replaced session is released when its count reaches zero. */
  private readonly inFlight = new Map<string, number>();
  private readonly retired = new Set<string>();

  constructor(
    private readonly pool: SessionPool,
    private readonly repository: Pick<ModelRepository, 'resolveWeights' | 'name'>,
    /** MAX_BATCH_SIZE. */
    private readonly maxBatchSize: number,
  ) {}

  has(id: string): boolean {
    return this.find(id) !== undefined;
  }

  /** The model (state `draining` while a DELETE finishes its work), or MODEL_NOT_FOUND. */
  get(id: string): ModelInfo {
    const entry = this.find(id);
    if (!entry) throw notRegistered(id);
    return this.info(entry);
  }

  list(): ModelInfo[] {
    return [...this.models.values()].filter((e) => e.state !== ModelState.LOADING).map((e) => this.info(e));
  }

  /** The model's current inputs, or undefined when it is not registered. */
  inputs(id: string): TensorSpec[] | undefined {
    return this.find(id)?.signature.inputs;
  }

  /** Every model's current version: what each worker thread holds. */
  sessions(): HeldSession[] {
    return [...this.models.values()].filter((e) => e.state !== ModelState.LOADING).map((e) => ({ key: e.key, path: e.path }));
  }

  /** Loads a model's first version in every worker thread; it is hidden (404) while LOADING. */
  async load(source: ModelSource): Promise<ModelInfo> {
    const { id, task, labels, version, path } = source;
    const entry: ModelEntry = { id, task, labels, configMaxBatch: source.maxBatchSize, state: ModelState.LOADING, version, key: sessionKey(id, version), path, signature: NO_SIGNATURE, loadedAt: '', served: 0, outstanding: 0 };
    this.models.set(id, entry);
    try {
      entry.signature = await this.loadSessions(entry.key, path);
    } catch (err) {
      // Today a model that does not load is not kept: at boot the gateway stops, at runtime the caller is told.
      this.models.delete(id);
      throw err;
    }
    entry.loadedAt = new Date().toISOString();
    entry.state = ModelState.READY;
    return this.info(entry);
  }

  /** Loads a model from a file inside MODELS_DIR under a new id, at runtime, beside the others. */
  async register(req: RegisterRequest): Promise<ModelInfo> {
    if (this.models.has(req.id)) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
    const path = this.repository.resolveWeights(req.weightsPath);
    const model = await this.load({ id: req.id, path, task: req.task, labels: req.labels, maxBatchSize: req.maxBatchSize, version: 1 });
    this.logger.log(`registered ${req.id} from ${this.repository.name(path)}`);
    return model;
  }

  /**
   * Admits one request: `encode` checks it against the model's current inputs (and throws when it does not fit),
   * then the request counts against the model until release(), so a DELETE can wait for it.
   */
  admit<T>(id: string, encode: (inputs: TensorSpec[]) => T): { model: ModelInfo; encoded: T; release: () => void } {
    const entry = this.serving(id);
    const encoded = encode(entry.signature.inputs);
    return { model: this.info(entry), encoded, release: this.lease(entry) };
  }

  /**
   * Runs rows as one batch on the model's current version. The version is pinned for the whole batch;
   * a reload meanwhile releases it only after this returns.
   */
  async run(id: string, rows: EncodedRow[]): Promise<BatchOutcome> {
    const entry = this.find(id);
    if (!entry) throw notRegistered(id);
    const { key, version } = entry;
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    try {
      const reply = await this.pool.run({ key, task: entry.task, labels: entry.labels, inputs: entry.signature.inputs, rows });
      entry.served += rows.length;
      return { version: String(version), ...reply };
    } catch (err) {
      throw new BalesError(ErrorCode.INFERENCE_FAILED, `inference failed on ${key}: ${(err as Error).message}`);
    } finally {
      const left = this.inFlight.get(key)! - 1;
      if (left > 0) this.inFlight.set(key, left);
      else {
        this.inFlight.delete(key);
        if (this.retired.delete(key)) void this.pool.unloadEverywhere(key);
        this.checkIdle(entry);
      }
    }
  }

  /**
   * Hot swap: loads and warms the new weights in every worker next to the old ones, then switches
   * in one synchronous step. Batches already running finish on the old session, released after the last.
   */
  async reload(id: string, weightsPath: string, allowSignatureChange = false): Promise<ReloadOutcome> {
    const entry = this.serving(id);
    const path = this.repository.resolveWeights(weightsPath);
    if (entry.nextVersion !== undefined) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' is already being reloaded`);
    const version = entry.version + 1;
    entry.nextVersion = version;
    try {
      const started = performance.now();
      const key = sessionKey(id, version);
      const signature = await this.loadSessions(key, path);
      const change = signatureChange(entry.signature, signature);
      if (change && !allowSignatureChange) {
        await this.pool.unloadEverywhere(key);
        throw new BalesError(ErrorCode.MODEL_CONFLICT, `signature change refused (${change}); send allow_signature_change: true to accept it`);
      }
      const old = { key: entry.key, version: entry.version };
      Object.assign(entry, { key, version, path, signature, loadedAt: new Date().toISOString() });
      this.retire(old.key);
      const loadMs = performance.now() - started;
      this.pool.recycleIfDue();
      this.logger.log(`reloaded ${id}: v${old.version} -> v${version} in ${loadMs.toFixed(0)} ms`);
      return { modelId: id, oldVersion: String(old.version), newVersion: String(version), loadMs: roundMs(loadMs) };
    } finally {
      entry.nextVersion = undefined;
    }
  }

  /**
   * Stops taking new requests for a model (404 from then on), waits until every request this replica
   * accepted for it has been answered and its running batches have ended, then releases its sessions.
   */
  async unload(id: string): Promise<UnloadOutcome> {
    const entry = this.serving(id);
    const started = performance.now();
    entry.state = ModelState.DRAINING;
    const drained = entry.outstanding;
    await new Promise<void>((resolve) => {
      entry.onIdle = resolve;
      this.checkIdle(entry);
    });
    this.models.delete(id);
    // Batches of other replicas' requests may still be running on it: the session goes with the last of them.
    if (this.inFlight.has(entry.key)) this.retired.add(entry.key);
    else await this.pool.unloadEverywhere(entry.key);
    const drainMs = roundMs(performance.now() - started);
    this.logger.log(`unloaded ${id} v${entry.version} after draining ${drained} requests in ${drainMs} ms`);
    return { modelId: id, version: String(entry.version), drainedRequests: drained, drainMs };
  }

  /** A model that is known to clients (any state but LOADING). */
  private find(id: string): ModelEntry | undefined {
    const entry = this.models.get(id);
    return entry && entry.state !== ModelState.LOADING ? entry : undefined;
  }

  /** A model that takes new requests, or MODEL_NOT_FOUND. */
  private serving(id: string): ModelEntry {
    const entry = this.models.get(id);
    if (!entry || entry.state !== ModelState.READY) throw notRegistered(id);
    return entry;
  }

  /** Releases a replaced version's sessions now, or after the last batch still running on it. */
  private retire(key: string): void {
    if (this.inFlight.has(key)) this.retired.add(key);
    else void this.pool.unloadEverywhere(key);
  }

  /** Counts one admitted request against the model until the returned release() (idempotent) is called. */
  private lease(entry: ModelEntry): () => void {
    entry.outstanding++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.outstanding--;
      this.checkIdle(entry);
    };
  }

  /** Wakes a pending DELETE once a draining model has no accepted request and no running batch left. */
  private checkIdle(entry: ModelEntry): void {
    if (entry.state === ModelState.DRAINING && entry.outstanding === 0 && !this.inFlight.has(entry.key) && entry.onIdle) {
      const wake = entry.onIdle;
      entry.onIdle = undefined;
      wake();
    }
  }

  private async loadSessions(key: string, path: string): Promise<Signature> {
    try {
      return await this.pool.loadEverywhere(key, path);
    } catch (err) {
      throw new BalesError(ErrorCode.INVALID_MODEL, `cannot load ${relative(process.cwd(), path) || path} as an ONNX model: ${(err as Error).message}`);
    }
  }

  private info(e: ModelEntry): ModelInfo {
    const batchDim = e.signature.inputs[0]?.shape[0];
    const batched = typeof batchDim === 'string' || batchDim === -1;
    const maxBatchSize = batched ? Math.min(this.maxBatchSize, e.configMaxBatch ?? Infinity) : 1;
    return {
      id: e.id,
      version: String(e.version),
      task: e.task,
      labels: e.labels,
      signature: e.signature,
      maxBatchSize,
      state: e.state,
      loadedAt: e.loadedAt,
      requestsServed: e.served,
      requestsPending: e.outstanding,
    };
  }
}

/** Why two signatures are not interchangeable, or undefined when they are. */
function signatureChange(a: Signature, b: Signature): string | undefined {
  const fmt = (s: Signature['inputs']) => s.map((t) => `${t.name}:${t.type}[${t.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : '?')).join(',')}]`).join(' ');
  if (fmt(a.inputs) !== fmt(b.inputs)) return `inputs ${fmt(a.inputs)} -> ${fmt(b.inputs)}`;
  if (fmt(a.outputs) !== fmt(b.outputs)) return `outputs ${fmt(a.outputs)} -> ${fmt(b.outputs)}`;
  return undefined;
}
