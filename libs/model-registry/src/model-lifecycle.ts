import { Logger } from '@nestjs/common';
import { join } from 'node:path';
import { BalesError, ErrorCode } from '@bales/errors';
import { NO_LAYOUT, batchLayout, type BatchLayout } from './batch-axes';
import type { EncodedRow } from './input-encoder';
import type { ModelRepository, ModelSource } from './model-repository';
import type { BatchOutcome, ModelInfo, PrepareRequest, RegisterRequest, ReloadOutcome, UnloadOutcome } from './model-types';
import { ModelState } from './model-types';
import { LoadFailure, type Signature, type Task, type TensorSpec, type WarmupReport, type WarmupSetting } from './protocol';
import type { HeldSession, LoadedSession, WorkerPool } from './worker-pool';

/** What the lifecycle needs of the worker threads. */
export type SessionPool = Pick<WorkerPool, 'loadEverywhere' | 'unloadEverywhere' | 'run' | 'recycleIfDue'>;

/** A version whose sessions every worker holds, beside the one served: prepared by a fleet reload, or kept after it. */
interface HeldVersion {
  version: number;
  key: string;
  path: string;
  signature: Signature;
  layout: BatchLayout;
  warmup?: WarmupReport;
  loadedAt?: string;
}

interface ModelEntry {
  id: string;
  /** A MODELS_DIR folder, read again when the model is loaded again, or a POST /models registration. */
  origin: 'folder' | 'api';
  /** False while a new id first loads: clients see it only once it is ready or failed. */
  shown: boolean;
  task: Task;
  labels?: string[];
  configMaxBatch?: number;
  /** config.json's batch_axes, applied to each version's signature. */
  configBatchAxes?: unknown;
  state: ModelState;
  /** The version served, the session key every worker holds it under, and its weights. */
  version: number;
  key: string;
  path: string;
  signature: Signature;
  /** The signature's batch axes: what info() shows and every batch is stacked by. */
  layout: BatchLayout;
  /** config.json's warm-up samples (or false), used by every version; and how the current one's warm-up went. */
  warmupSetting: WarmupSetting;
  warmup?: WarmupReport;
  /** Why a FAILED model did not load. */
  reason?: string;
  /** ISO 8601, written once per load: info() runs on every request. */
  loadedAt?: string;
  /** The version a hot swap is loading beside the served one; a second reload is refused meanwhile. */
  nextVersion?: number;
  /** A version loaded by a fleet reload's prepare, served once it is committed. */
  prepared?: HeldVersion;
  /** Versions replaced by a commit whose queued work may still be running somewhere: kept until released. */
  older: Map<number, HeldVersion>;
  served: number;
  /** Requests admitted on this replica and not answered yet: a DELETE waits for them. */
  outstanding: number;
  onIdle?: () => void;
}

const NO_SIGNATURE: Signature = { inputs: [], outputs: [] };
const sessionKey = (id: string, version: number) => `${id}@${version}`;
const notRegistered = (id: string) => new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
const roundMs = (ms: number) => Math.round(ms * 1000) / 1000;
const unavailable = ({ id, state, reason }: ModelEntry) =>
  new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${id}' is ${state}${reason ? `: ${reason}` : ''}`, { model_id: id, state, ...(reason && { reason }) });

/** A load that failed (INVALID_MODEL), with the signature when ONNX Runtime read one before it failed. */
class FailedLoad extends BalesError {
  constructor(
    message: string,
    readonly signature?: Signature,
  ) {
    super(ErrorCode.INVALID_MODEL, message);
  }
}

/** What each way a load fails is called: the file, an operator or opset ONNX Runtime lacks, or the model's own warm-up. */
function failedLoad(file: string, err: unknown): FailedLoad {
  const detail = (err as Error).message;
  if (!(err instanceof LoadFailure)) return new FailedLoad(`cannot load ${file}: ${detail}`);
  const message = {
    unreadable: `cannot load ${file}: ONNX Runtime cannot parse it as an ONNX model (${detail})`,
    unsupported: `cannot load ${file}: it uses an operator or opset this ONNX Runtime does not support (${detail})`,
    invalid: `cannot load ${file}: ONNX Runtime rejects it as an invalid model (${detail})`,
    input_type: `cannot serve ${file}: ${detail}`,
    warmup: `${file} loads, but ${detail}`,
  }[err.kind];
  return new FailedLoad(message, err.signature);
}

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
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly pool: SessionPool,
    private readonly repository: Pick<ModelRepository, 'resolveWeights' | 'name' | 'read' | 'weightsOf' | 'root'>,
    /** MAX_BATCH_SIZE. */
    private readonly maxBatchSize: number,
  ) {}

  has(id: string): boolean {
    return this.find(id) !== undefined;
  }

  /** The model in any state (`failed` with its reason, `draining` while a DELETE finishes), or MODEL_NOT_FOUND. */
  get(id: string): ModelInfo {
    const entry = this.find(id);
    if (!entry) throw notRegistered(id);
    return this.info(entry);
  }

  list(): ModelInfo[] {
    return [...this.models.values()].filter((e) => e.shown).map((e) => this.info(e));
  }

  /** The model when it takes new requests; MODEL_UNAVAILABLE naming its state and reason when it is failed or loading. */
  serving(id: string): ModelInfo {
    return this.info(this.ready(id));
  }

  /** The inputs and batch axes of a version (the served one when none is named), or undefined when it is not held. */
  inputs(id: string, version?: string): { inputs: TensorSpec[]; axes: (number | null)[] } | undefined {
    const held = this.held(id, version);
    return held && { inputs: held.signature.inputs, axes: held.layout.inputs };
  }

  /**
   * A held version as info() shows the model, with that version's signature, batch axes and rows per batch; or
   * undefined when this replica holds no such version (never loaded, or released).
   */
  version(id: string, version: string): ModelInfo | undefined {
    const entry = this.models.get(id);
    const held = this.held(id, version);
    if (!entry || !held) return undefined;
    return { ...this.info(entry), version, signature: held.signature, batchAxes: held.layout.axes, unbatchedReason: held.layout.unbatched, maxBatchSize: this.maxBatchOf(entry, held.layout) };
  }

  /** Every version the worker threads hold: served, prepared and kept; a replaced worker thread loads them all. */
  sessions(): HeldSession[] {
    const held: HeldSession[] = [];
    for (const e of this.models.values()) {
      const session = (v: { key: string; path: string }) => ({ key: v.key, path: v.path, warmup: e.warmupSetting, batchAxes: e.configBatchAxes });
      if (e.state === ModelState.READY || e.state === ModelState.DRAINING) held.push(session(e));
      if (e.prepared) held.push(session(e.prepared));
      for (const v of e.older.values()) held.push(session(v));
    }
    return held;
  }

  /**
   * The model versions this replica can run queued work for: each one whose sessions are up, served or not (a
   * version prepared here may already be committed on the replica that queued the work).
   */
  runnable(): { id: string; version: string }[] {
    const out: { id: string; version: string }[] = [];
    for (const e of this.models.values()) {
      if (e.state === ModelState.READY || e.state === ModelState.DRAINING) out.push({ id: e.id, version: String(e.version) });
      if (e.prepared) out.push({ id: e.id, version: String(e.prepared.version) });
      for (const v of e.older.values()) out.push({ id: e.id, version: String(v.version) });
    }
    return out;
  }

  /** The weights file a model serves (any state). */
  path(id: string): string {
    const entry = this.find(id);
    if (!entry) throw notRegistered(id);
    return entry.path;
  }

  /** Calls `listener` whenever runnable() may have changed. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Loads a MODELS_DIR folder (config.json and model.onnx) in every worker thread. It is hidden (404) while it
   * loads; when it does not load (or config.json is not usable) it is kept FAILED with the reason, and this throws.
   */
  async loadFolder(id: string): Promise<ModelInfo> {
    const entry = this.add({ id, path: this.repository.weightsOf(id), task: 'classification', version: 1 }, 'folder');
    await this.start(entry, () => this.repository.read(id));
    return this.info(entry);
  }

  /** Loads a model as loadFolder does, from a source already read. */
  async load(source: ModelSource): Promise<ModelInfo> {
    const entry = this.add(source, 'api');
    await this.start(entry, () => source);
    return this.info(entry);
  }

  /**
   * Loads a model from a file inside MODELS_DIR under a new id, at runtime, beside the others; or in the place of a
   * failed model of that id. A file that does not load leaves the model FAILED, and this throws INVALID_MODEL.
   */
  async register(req: RegisterRequest): Promise<ModelInfo> {
    const existing = this.models.get(req.id);
    if (existing && existing.state !== ModelState.FAILED) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
    const path = this.repository.resolveWeights(req.weightsPath);
    const source: ModelSource = { id: req.id, path, task: req.task, labels: req.labels, maxBatchSize: req.maxBatchSize, version: 1 };
    const entry = existing ?? this.add(source, 'api');
    entry.origin = 'api';
    await this.start(entry, () => source);
    this.logger.log(`registered ${req.id} from ${this.repository.name(path)}`);
    return this.info(entry);
  }

  /**
   * Admits one request: `encode` checks it against the model's current inputs (and throws when it does not fit),
   * then the request counts against the model until release(), so a DELETE can wait for it.
   */
  admit<T>(id: string, encode: (inputs: TensorSpec[], axes: (number | null)[]) => T): { model: ModelInfo; encoded: T; release: () => void } {
    const entry = this.ready(id);
    const encoded = encode(entry.signature.inputs, entry.layout.inputs);
    return { model: this.info(entry), encoded, release: this.lease(entry) };
  }

  /**
   * Runs rows as one batch on the model's current version. The version is pinned for the whole batch;
   * a reload meanwhile releases it only after this returns.
   */
  async run(id: string, rows: EncodedRow[], version?: string): Promise<BatchOutcome> {
    const entry = this.models.get(id);
    if (!entry || (!entry.shown && version === undefined)) throw notRegistered(id);
    const held = this.held(id, version);
    if (!held) {
      // A draining model still runs what it accepted; a failed or loading one holds no sessions.
      if (version === undefined || entry.state === ModelState.FAILED || entry.state === ModelState.LOADING) throw unavailable(entry);
      throw new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${id}' v${version} is not held by the replica that took this request`, { model_id: id, state: entry.state });
    }
    const { key, version: heldVersion } = held;
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    try {
      const reply = await this.pool.run({ key, task: entry.task, labels: entry.labels, inputs: held.signature.inputs, layout: held.layout, rows });
      entry.served += rows.length;
      return { version: String(heldVersion), ...reply };
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
   * A failed model is loaded again instead (see retry); `weightsPath` is needed only to swap a ready one.
   */
  async reload(id: string, weightsPath: string | undefined, allowSignatureChange = false): Promise<ReloadOutcome> {
    const known = this.find(id);
    if (known?.state === ModelState.FAILED) return this.retry(known, weightsPath);
    if (known?.state === ModelState.LOADING) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' is already being loaded`);
    const entry = this.ready(id);
    if (weightsPath === undefined) throw new BalesError(ErrorCode.INVALID_REQUEST, `weights_path is required to hot-swap model '${id}', which is ready; only a failed model is loaded again without one`);
    const path = this.repository.resolveWeights(weightsPath);
    if (entry.nextVersion !== undefined) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' is already being reloaded`);
    const version = entry.version + 1;
    entry.nextVersion = version;
    try {
      const started = performance.now();
      const key = sessionKey(id, version);
      const { signature, warmup } = await this.loadSessions({ key, path, warmup: entry.warmupSetting, batchAxes: entry.configBatchAxes });
      const change = signatureChange(entry.signature, signature);
      if (change && !allowSignatureChange) {
        await this.pool.unloadEverywhere(key);
        throw new BalesError(ErrorCode.MODEL_CONFLICT, `signature change refused (${change}); send allow_signature_change: true to accept it`);
      }
      const layout = await this.layoutFor(key, signature, entry.configBatchAxes);
      const old = { key: entry.key, version: entry.version };
      Object.assign(entry, { key, version, path, signature, layout, warmup, loadedAt: new Date().toISOString() });
      this.warnUnwarmed(entry);
      this.retire(old.key);
      this.changed();
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
    const known = this.find(id);
    // A failed model holds no sessions and no requests: it goes at once.
    if (known?.state === ModelState.FAILED) {
      this.models.delete(id);
      this.logger.log(`removed failed model ${id}`);
      return { modelId: id, version: String(known.version), drainedRequests: 0, drainMs: 0 };
    }
    if (known?.state === ModelState.LOADING) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' is loading; delete it once it is ready or failed`);
    const entry = this.ready(id);
    const started = performance.now();
    entry.state = ModelState.DRAINING;
    const drained = entry.outstanding;
    await new Promise<void>((resolve) => {
      entry.onIdle = resolve;
      this.checkIdle(entry);
    });
    this.models.delete(id);
    this.changed();
    // Batches of other replicas' requests may still be running on it: the session goes with the last of them.
    if (this.inFlight.has(entry.key)) this.retired.add(entry.key);
    else await this.pool.unloadEverywhere(entry.key);
    const drainMs = roundMs(performance.now() - started);
    this.logger.log(`unloaded ${id} v${entry.version} after draining ${drained} requests in ${drainMs} ms`);
    return { modelId: id, version: String(entry.version), drainedRequests: drained, drainMs };
  }


  /**
   * A fleet call's first phase: loads and warms `version` beside the served one (or, for an id this replica does not
   * hold, as a new model hidden from clients), and serves nothing new until commit(). A failed model is loaded
   * again this way too. Throws as reload() does; nothing changes then.
   */
  async prepare(req: PrepareRequest): Promise<{ loadMs: number }> {
    const started = performance.now();
    const existing = this.models.get(req.id);
    // Asked again for a version it holds (a call and a catalog check crossing): nothing to load.
    const up = existing?.state === ModelState.READY || existing?.state === ModelState.DRAINING;
    if ((up && existing?.version === req.version) || existing?.prepared?.version === req.version) return { loadMs: 0 };
    if (existing?.state === ModelState.LOADING || existing?.prepared || existing?.nextVersion !== undefined) {
      throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' is already being loaded on this replica`);
    }
    if (existing?.state === ModelState.DRAINING) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' is being deleted`);
    if (!existing) {
      const source = this.sourceFor(req);
      const entry = this.add(source, req.origin);
      try {
        await this.start(entry, () => source, false);
      } catch (err) {
        this.models.delete(req.id);
        throw err;
      }
      return { loadMs: roundMs(performance.now() - started) };
    }
    const path = req.weightsPath === undefined ? this.ownWeights(existing.path) : this.repository.resolveWeights(req.weightsPath);
    const key = sessionKey(req.id, req.version);
    existing.nextVersion = req.version;
    try {
      const { signature, warmup } = await this.loadSessions({ key, path, warmup: existing.warmupSetting, batchAxes: existing.configBatchAxes });
      const change = existing.state === ModelState.READY ? signatureChange(existing.signature, signature) : undefined;
      if (change && !req.allowSignatureChange) {
        await this.pool.unloadEverywhere(key);
        throw new BalesError(ErrorCode.MODEL_CONFLICT, `signature change refused (${change}); send allow_signature_change: true to accept it`);
      }
      const layout = await this.layoutFor(key, signature, existing.configBatchAxes);
      existing.prepared = { version: req.version, key, path, signature, layout, warmup, loadedAt: new Date().toISOString() };
      this.changed();
      return { loadMs: roundMs(performance.now() - started) };
    } finally {
      existing.nextVersion = undefined;
    }
  }

  /**
   * A fleet call's second phase: new requests are admitted under `version` from now on. The version served until
   * now is kept for the work queued under it, until release(). Committing the served version again changes nothing.
   */
  commit(id: string, version: number): void {
    const entry = this.models.get(id);
    if (!entry) throw notRegistered(id);
    if (entry.version === version && !entry.prepared) {
      entry.shown = true;
      this.changed();
      return;
    }
    const next = entry.prepared;
    if (next?.version !== version) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' v${version} is not prepared on this replica`);
    if (entry.state === ModelState.READY) {
      const { key, path, signature, layout, warmup, loadedAt } = entry;
      entry.older.set(entry.version, { version: entry.version, key, path, signature, layout, warmup, loadedAt });
    }
    Object.assign(entry, { version, key: next.key, path: next.path, signature: next.signature, layout: next.layout, warmup: next.warmup, loadedAt: next.loadedAt, state: ModelState.READY, reason: undefined, prepared: undefined });
    this.warnUnwarmed(entry);
    this.changed();
    // As after a local hot swap: reloads that leave RSS growing get fresh worker threads.
    this.pool.recycleIfDue();
  }

  /** Undoes a prepare(): a prepared version's sessions are released, and a new id that was never committed is gone. */
  async abort(id: string, version: number): Promise<void> {
    const entry = this.models.get(id);
    if (!entry) return;
    if (!entry.shown && entry.version === version) {
      this.models.delete(id);
      this.changed();
      this.retire(entry.key);
    } else if (entry.prepared?.version === version) {
      const key = entry.prepared.key;
      entry.prepared = undefined;
      this.changed();
      this.retire(key);
    }
  }

  /**
   * No work is left anywhere for `version`: its sessions go once its running batches end. Releasing the served
   * version of a model being deleted removes the model.
   */
  release(id: string, version: number): void {
    const entry = this.models.get(id);
    if (!entry) return;
    const kept = entry.older.get(version);
    if (kept) {
      entry.older.delete(version);
      this.retire(kept.key);
    } else if (entry.version === version && entry.state === ModelState.DRAINING) {
      this.models.delete(id);
      this.retire(entry.key);
      for (const v of entry.older.values()) this.retire(v.key);
    } else return;
    this.changed();
  }

  /**
   * A fleet DELETE's first phase: no new request is admitted (404 from then on); work already accepted still runs.
   * A failed model holds nothing and goes at once. Returns the requests this replica had accepted.
   */
  stopAdmission(id: string): { version: string; pending: number } {
    const entry = this.models.get(id);
    if (!entry?.shown) throw notRegistered(id);
    if (entry.state === ModelState.FAILED) {
      this.models.delete(id);
      this.changed();
      return { version: String(entry.version), pending: 0 };
    }
    if (entry.state === ModelState.READY) entry.state = ModelState.DRAINING;
    return { version: String(entry.version), pending: entry.outstanding };
  }

  /** Resolves once every request this replica accepted for the model has been answered. */
  drained(id: string): Promise<void> {
    const entry = this.models.get(id);
    if (!entry || entry.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (entry.outstanding === 0 ? resolve() : setTimeout(check, 10).unref());
      check();
    });
  }

  /**
   * Marks a model failed here with `reason` (its file is not the fleet's), releasing its sessions: it takes no
   * requests and runs no work on this replica, while the others serve it.
   */
  fail(id: string, reason: string, source?: { version: number; weightsPath: string; origin: ModelEntry['origin'] }): void {
    // A model this replica never loaded (its file missing or different here) is kept as failed too, so it answers 503.
    const entry = this.models.get(id) ?? (source && this.add({ id, path: join(this.repository.root, source.weightsPath), task: 'classification', version: source.version }, source.origin));
    if (!entry) return;
    const up = entry.state === ModelState.READY || entry.state === ModelState.DRAINING;
    if (up) this.retire(entry.key);
    if (entry.prepared) this.retire(entry.prepared.key);
    Object.assign(entry, { state: ModelState.FAILED, reason, prepared: undefined, layout: NO_LAYOUT, shown: true });
    this.logger.error(`model ${id} is failed: ${reason}`);
    this.changed();
  }

  /** A new model's source: a MODELS_DIR folder (its config.json, with the weights named), or the request itself. */
  private sourceFor(req: PrepareRequest): ModelSource {
    if (req.origin === 'folder') {
      const source = this.repository.read(req.id);
      return { ...source, version: req.version, path: req.weightsPath === undefined ? source.path : this.repository.resolveWeights(req.weightsPath) };
    }
    if (req.weightsPath === undefined) throw new BalesError(ErrorCode.INVALID_REQUEST, 'weights_path is required to register a model');
    return { id: req.id, path: this.repository.resolveWeights(req.weightsPath), task: req.task ?? 'classification', labels: req.labels, maxBatchSize: req.maxBatchSize, version: req.version };
  }

  /**
   * Loads a failed model again, from `weightsPath` when given, else from where it came: a MODELS_DIR folder is read
   * again (config.json and model.onnx), a registration keeps its task and labels. It is LOADING meanwhile, then
   * READY, or FAILED with the new reason. A weights path that is refused (4xx) leaves it as it was.
   */
  private async retry(entry: ModelEntry, weightsPath: string | undefined): Promise<ReloadOutcome> {
    const path = weightsPath === undefined ? undefined : this.repository.resolveWeights(weightsPath);
    const started = performance.now();
    const oldVersion = String(entry.version);
    const { id, task, labels, configMaxBatch: maxBatchSize, configBatchAxes: batchAxes, version, warmupSetting: warmup } = entry;
    const read = (): ModelSource => {
      const source = entry.origin === 'folder' ? this.repository.read(id) : { id, path: entry.path, task, labels, maxBatchSize, batchAxes, version, warmup };
      // Its own file is checked again: it may be gone, or a symlink may now point outside MODELS_DIR.
      return { ...source, path: path ?? this.ownWeights(source.path) };
    };
    await this.start(entry, read);
    const loadMs = performance.now() - started;
    this.logger.log(`loaded failed model ${id} again from ${this.repository.name(entry.path)} in ${loadMs.toFixed(0)} ms`);
    return { modelId: id, oldVersion, newVersion: String(entry.version), loadMs: roundMs(loadMs) };
  }

  /** A model's own weights file, checked again; named as MODELS_DIR holds it, not by a field the client never sent. */
  private ownWeights(file: string): string {
    try {
      return this.repository.resolveWeights(file);
    } catch (err) {
      if (err instanceof BalesError && err.code === ErrorCode.FILE_NOT_FOUND) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `the model's file ${this.repository.name(file)} is missing`);
      throw err;
    }
  }

  /** A new model entry, hidden until its first load ends. */
  private add(source: ModelSource, origin: ModelEntry['origin']): ModelEntry {
    const { id, task, version, path } = source;
    const entry: ModelEntry = { id, origin, shown: false, task, state: ModelState.LOADING, version, key: sessionKey(id, version), path, signature: NO_SIGNATURE, layout: NO_LAYOUT, warmupSetting: undefined, served: 0, outstanding: 0, older: new Map() };
    this.models.set(id, entry);
    return entry;
  }

  /**
   * Reads the model's source and loads it in every worker thread: READY once its sessions are up, else FAILED with
   * the reason (logged, and thrown to the caller). Sets LOADING before its first await, so a second load of the same
   * model meanwhile sees it.
   */
  private async start(entry: ModelEntry, read: () => ModelSource, show = true): Promise<void> {
    Object.assign(entry, { state: ModelState.LOADING, reason: undefined, warmup: undefined, loadedAt: undefined, signature: NO_SIGNATURE, layout: NO_LAYOUT });
    try {
      const source = read();
      Object.assign(entry, {
        task: source.task,
        labels: source.labels,
        configMaxBatch: source.maxBatchSize,
        configBatchAxes: source.batchAxes,
        warmupSetting: source.warmup,
        version: source.version,
        key: sessionKey(entry.id, source.version),
        path: source.path,
      });
      const { signature, warmup } = await this.loadSessions({ key: entry.key, path: entry.path, warmup: entry.warmupSetting, batchAxes: entry.configBatchAxes });
      entry.signature = signature;
      entry.layout = await this.layoutFor(entry.key, signature, source.batchAxes);
      Object.assign(entry, { warmup, loadedAt: new Date().toISOString(), state: ModelState.READY });
      this.warnUnwarmed(entry);
    } catch (err) {
      if (err instanceof FailedLoad && err.signature) entry.signature = err.signature;
      Object.assign(entry, { state: ModelState.FAILED, reason: (err as Error).message, layout: NO_LAYOUT });
      this.logger.error(`model ${entry.id} is failed: ${entry.reason}`);
      throw err;
    } finally {
      entry.shown ||= show;
      this.changed();
    }
  }

  private warnUnwarmed(entry: ModelEntry): void {
    if (entry.warmup?.warning) this.logger.warn(`model ${entry.id} v${entry.version}: ${entry.warmup.warning}`);
  }

  /** A model that is known to clients: in any state, once its first load has ended. */
  private find(id: string): ModelEntry | undefined {
    const entry = this.models.get(id);
    return entry?.shown ? entry : undefined;
  }

  /** A model that takes new requests; MODEL_UNAVAILABLE when it is failed or loading; else MODEL_NOT_FOUND. */
  private ready(id: string): ModelEntry {
    const entry = this.find(id);
    if (entry?.state === ModelState.READY) return entry;
    if (entry?.state === ModelState.FAILED || entry?.state === ModelState.LOADING) throw unavailable(entry);
    throw notRegistered(id);
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

  private async loadSessions(session: HeldSession): Promise<LoadedSession> {
    try {
      return await this.pool.loadEverywhere(session);
    } catch (err) {
      throw failedLoad(this.repository.name(session.path), err);
    }
  }

  /** The signature's batch axes; a bad batch_axes (INVALID_MODEL) releases the sessions just loaded under `key`. */
  private async layoutFor(key: string, signature: Signature, batchAxes: unknown): Promise<BatchLayout> {
    try {
      return batchLayout(signature, batchAxes);
    } catch (err) {
      await this.pool.unloadEverywhere(key);
      throw err;
    }
  }

  /** A version this replica holds sessions for: the served one (when none is named), a prepared or a kept one. */
  private held(id: string, version?: string): HeldVersion | undefined {
    const e = this.models.get(id);
    if (!e) return undefined;
    if (version === undefined || version === String(e.version)) {
      const up = e.state === ModelState.READY || e.state === ModelState.DRAINING;
      // A new id's first version, prepared and not yet committed here, runs only work that names it.
      return up && (e.shown || version !== undefined) ? e : undefined;
    }
    if (e.prepared && String(e.prepared.version) === version) return e.prepared;
    return e.older.get(Number(version));
  }

  private maxBatchOf(e: ModelEntry, layout: BatchLayout): number {
    return layout.unbatched ? 1 : Math.min(this.maxBatchSize, e.configMaxBatch ?? Infinity);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private info(e: ModelEntry): ModelInfo {
    const maxBatchSize = this.maxBatchOf(e, e.layout);
    return {
      id: e.id,
      version: String(e.version),
      task: e.task,
      labels: e.labels,
      signature: e.signature,
      maxBatchSize,
      batchAxes: e.layout.axes,
      unbatchedReason: e.layout.unbatched,
      state: e.state,
      ...(e.reason !== undefined && { reason: e.reason }),
      ...(e.warmup && { warmup: e.warmup }),
      ...(e.loadedAt !== undefined && { loadedAt: e.loadedAt }),
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
