import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { EncodedRow, TensorInput, checkRow, encodePayload, encodeTensors } from './input-encoder';
import { Feed, ElementType, RowResult, Signature, Task, TASKS } from './protocol';
import { WorkerPool } from './worker-pool';

export interface ModelInfo {
  id: string;
  version: string;
  task: Task;
  labels?: string[];
  signature: Signature;
  /** Rows per batch: MAX_BATCH_SIZE, the model's own max_batch_size, or 1 when its batch dimension is fixed. */
  maxBatchSize: number;
  /** `draining` after DELETE: no new requests, work already accepted still finishes. */
  state: ModelState;
  loadedAt: string;
  requestsServed: number;
  /** Requests this replica accepted for the model and has not answered yet. */
  requestsPending: number;
}

/**
 * Where a model is in its life: LOADING until its first version is up in every worker thread, READY while it
 * takes requests, DRAINING after DELETE (no new requests, accepted ones still finish), FAILED when it could not
 * be loaded. A hot swap loads the next version beside a READY one, so the model stays READY throughout.
 */
export const ModelState = { LOADING: 'loading', READY: 'ready', FAILED: 'failed', DRAINING: 'draining' } as const;
export type ModelState = (typeof ModelState)[keyof typeof ModelState];

/** A request admitted for a model: its encoded row, and release() once it has been answered. */
export interface Admission {
  model: ModelInfo;
  row: EncodedRow;
  release: () => void;
}

/** A tensor-form request (Open Inference Protocol) admitted as one row per batch entry. */
export interface TensorAdmission {
  model: ModelInfo;
  rows: EncodedRow[];
  release: () => void;
}

export interface RegisterRequest {
  id: string;
  weightsPath: string;
  task: Task;
  labels?: string[];
  maxBatchSize?: number;
}

export interface UnloadOutcome {
  modelId: string;
  version: string;
  /** Requests this replica had accepted for the model when it stopped taking new ones; all were answered. */
  drainedRequests: number;
  drainMs: number;
}

export interface BatchOutcome {
  version: string;
  results: RowResult[];
  startedAt: number;
  inferenceMs: number;
}

export interface ReloadOutcome {
  modelId: string;
  oldVersion: string;
  newVersion: string;
  loadMs: number;
}

interface ModelConfigFile {
  task?: Task;
  labels?: string[];
  max_batch_size?: number;
  version?: number;
}

interface ModelEntry {
  id: string;
  task: Task;
  labels?: string[];
  configMaxBatch?: number;
  version: number;
  /** The session key every worker holds the current version under. */
  key: string;
  path: string;
  signature: Signature;
  /** ISO 8601, written once per load: describe() runs on every request. */
  loadedAt: string;
  served: number;
  reloading: boolean;
  state: ModelState;
  /** Requests admitted on this replica and not answered yet: a DELETE waits for them. */
  outstanding: number;
  onIdle?: () => void;
}

/** A model id: what a model folder, a URL segment and a Prometheus label value can all hold. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const sessionKey = (id: string, version: number) => `${id}@${version}`;

/**
 * Loads, holds, swaps and releases the ONNX models. Sessions live only in worker threads:
 * the event loop sees signatures and results, never a session.
 */
@Injectable()
export class ModelRegistry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ModelRegistry.name);
  private readonly models = new Map<string, ModelEntry>();
  /** Batches in flight per session key; a replaced session is released when its count reaches zero. */
  private readonly inFlight = new Map<string, number>();
  private readonly retired = new Set<string>();
  /** Ids being registered right now, so two registrations of one id cannot race. */
  private readonly registering = new Set<string>();
  private readonly pool: WorkerPool;
  private readonly intraOpThreads: number;
  private readonly modelsDir: string;
  private loaded = false;
  /** Loads, reloads and recycling change what every worker holds, so they run one at a time. */
  private sessionChanges: Promise<unknown> = Promise.resolve();
  /** RSS after boot or after the last recycle: what reload-driven growth is measured against. */
  private rssBaseline = 0;

  constructor(private readonly config: BalesConfig) {
    this.pool = new WorkerPool(config.THREAD_POOL_SIZE, (index) => this.reloadInto(index));
    // Each worker thread gets its share of the cores, so the pool never oversubscribes them.
    this.intraOpThreads = config.ORT_INTRA_OP_THREADS || Math.max(1, Math.floor(availableParallelism() / config.THREAD_POOL_SIZE));
    this.modelsDir = resolve(config.MODELS_DIR);
  }

  /** How many batches can run at once: one per worker thread. */
  get slots(): number {
    return this.config.THREAD_POOL_SIZE;
  }

  async onModuleInit(): Promise<void> {
    this.pool.start();
    if (!existsSync(this.modelsDir)) throw new Error(`MODELS_DIR ${this.modelsDir} does not exist`);
    for (const name of readdirSync(this.modelsDir).sort()) {
      const folder = join(this.modelsDir, name);
      if (!statSync(folder).isDirectory() || !existsSync(join(folder, 'model.onnx'))) continue;
      const started = performance.now();
      await this.loadFolder(name, folder);
      this.logger.log(`loaded ${name} v${this.models.get(name)!.version} in ${(performance.now() - started).toFixed(0)} ms`);
    }
    this.loaded = true;
    this.rssBaseline = process.memoryUsage.rss();
    if (!this.models.has(this.config.DEFAULT_MODEL_ID)) {
      this.logger.warn(`DEFAULT_MODEL_ID ${this.config.DEFAULT_MODEL_ID} is not in ${this.modelsDir}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.loaded = false;
    await this.pool.close();
  }

  /** True once the models found at boot are loaded in every worker thread, until shutdown releases them. */
  get ready(): boolean {
    return this.loaded;
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  /** The model (state `draining` while a DELETE finishes its work), or MODEL_NOT_FOUND. */
  get(id: string): ModelInfo {
    const entry = this.models.get(id);
    if (!entry) throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
    return this.describe(entry);
  }

  list(): ModelInfo[] {
    return [...this.models.values()].map((e) => this.describe(e));
  }

  /**
   * Admits one request: checks the payload against the model's current signature (INVALID_INPUT naming the
   * expected shape) and counts the request until release(), so a DELETE can wait for it.
   */
  admit(id: string, payload: Record<string, unknown>): Admission {
    const entry = this.serving(id);
    const row = encodePayload(entry.signature.inputs, payload);
    return { model: this.describe(entry), row, release: this.lease(entry) };
  }

  /** Why a decoded queue row does not fit the model's current inputs, or undefined when it does. */
  checkRow(id: string, row: EncodedRow): string | undefined {
    const entry = this.models.get(id);
    return entry ? checkRow(entry.signature.inputs, row) : `model '${id}' is not registered`;
  }

  /**
   * Runs rows as one batch on the least busy worker, on the model's current version.
   * The version is pinned for the whole batch; a reload meanwhile releases it only after this returns.
   */
  async run(id: string, rows: EncodedRow[]): Promise<BatchOutcome> {
    const entry = this.models.get(id);
    if (!entry) throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
    const { key, version } = entry;
    const feeds: Feed[] = entry.signature.inputs.map((spec, i) => {
      const data = new ArrayBuffer(rows.reduce((n, r) => n + r.buffers[i].byteLength, 0));
      const view = new Uint8Array(data);
      let offset = 0;
      for (const r of rows) {
        view.set(r.buffers[i], offset);
        offset += r.buffers[i].byteLength;
      }
      return { name: spec.name, type: spec.type as ElementType, dims: [rows.length, ...rows[0].dims[i]], data };
    });
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    try {
      const rawRows = rows.some((r) => r.raw) ? rows.map((r) => r.raw === true) : undefined;
      const reply = await this.pool.run({ op: 'run', key, task: entry.task, labels: entry.labels, rows: rows.length, feeds, rawRows });
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
   * Admits a request whose inputs are whole tensors with a leading batch dimension of N: N rows that
   * join the dynamic batcher like N requests, answered with every output tensor.
   */
  admitTensors(id: string, tensors: TensorInput[]): TensorAdmission {
    const entry = this.serving(id);
    const rows = encodeTensors(id, entry.signature.inputs, tensors);
    return { model: this.describe(entry), rows, release: this.lease(entry) };
  }

  /** Loads a model from a file inside MODELS_DIR under a new id, at runtime, beside the others. */
  async register(req: RegisterRequest): Promise<ModelInfo> {
    if (!MODEL_ID_PATTERN.test(req.id)) throw new BalesError(ErrorCode.INVALID_REQUEST, 'model_id must be 1-128 letters, digits, _ . or -');
    if (this.models.has(req.id) || this.registering.has(req.id)) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
    const path = this.resolveWeights(req.weightsPath);
    this.registering.add(req.id);
    try {
      const version = 1;
      const key = sessionKey(req.id, version);
      const signature = await this.loadSessions(key, path);
      const entry = this.newEntry({ id: req.id, task: req.task, labels: req.labels, configMaxBatch: req.maxBatchSize, version, key, path, signature });
      this.models.set(req.id, entry);
      this.logger.log(`registered ${req.id} from ${relative(this.modelsDir, path)}`);
      return this.describe(entry);
    } finally {
      this.registering.delete(req.id);
    }
  }

  /**
   * Stops taking new requests for a model (404 from then on), waits until every request this replica
   * accepted for it has been answered and its running batches have ended, then releases its sessions.
   */
  async unregister(id: string): Promise<UnloadOutcome> {
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
    const drainMs = Math.round((performance.now() - started) * 1000) / 1000;
    this.logger.log(`unloaded ${id} v${entry.version} after draining ${drained} requests in ${drainMs} ms`);
    return { modelId: id, version: String(entry.version), drainedRequests: drained, drainMs };
  }

  /**
   * Hot swap: loads and warms the new weights in every worker next to the old ones, then switches
   * in one synchronous step. Batches already running finish on the old session, released after the last.
   */
  async reload(id: string, weightsPath: string, allowSignatureChange = false): Promise<ReloadOutcome> {
    const entry = this.serving(id);
    const path = this.resolveWeights(weightsPath);
    if (entry.reloading) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' is already being reloaded`);
    entry.reloading = true;
    try {
      const started = performance.now();
      const version = entry.version + 1;
      const key = sessionKey(id, version);
      const signature = await this.loadSessions(key, path);
      const change = signatureChange(entry.signature, signature);
      if (change && !allowSignatureChange) {
        await this.pool.unloadEverywhere(key);
        throw new BalesError(ErrorCode.MODEL_CONFLICT, `signature change refused (${change}); send allow_signature_change: true to accept it`);
      }
      const old = { key: entry.key, version: entry.version };
      Object.assign(entry, { key, version, path, signature, loadedAt: new Date().toISOString() });
      if (this.inFlight.has(old.key)) this.retired.add(old.key);
      else void this.pool.unloadEverywhere(old.key);
      const loadMs = performance.now() - started;
      this.recycleIfDue();
      this.logger.log(`reloaded ${id}: v${old.version} -> v${version} in ${loadMs.toFixed(0)} ms`);
      return { modelId: id, oldVersion: String(old.version), newVersion: String(version), loadMs: Math.round(loadMs * 1000) / 1000 };
    } finally {
      entry.reloading = false;
    }
  }

  /**
   * Resolves a weights path and refuses anything outside MODELS_DIR: first by its name, before the
   * file system is touched, then again after symlinks are followed.
   * A relative path is read from the working directory (the original's "./models/x.onnx"), else from MODELS_DIR.
   */
  private resolveWeights(weightsPath: string): string {
    const candidates = isAbsolute(weightsPath) ? [weightsPath] : [resolve(weightsPath), resolve(this.modelsDir, weightsPath)];
    const candidate = candidates.find((c) => isInside(this.modelsDir, c));
    const outside = () => new BalesError(ErrorCode.PATH_NOT_ALLOWED, `weights_path must lie inside MODELS_DIR (${this.config.MODELS_DIR})`);
    if (!candidate) throw outside();
    if (!existsSync(candidate)) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${weightsPath} does not exist`);
    const real = realpathSync(candidate);
    if (!isInside(realpathSync(this.modelsDir), real)) throw outside();
    if (!statSync(real).isFile()) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${weightsPath} is not a file`);
    return real;
  }

  private async loadFolder(id: string, folder: string): Promise<void> {
    if (!MODEL_ID_PATTERN.test(id)) throw new Error(`model folder '${id}' is not a valid model id`);
    const configPath = join(folder, 'config.json');
    const file: ModelConfigFile = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : {};
    const task = file.task ?? 'classification';
    if (!TASKS.includes(task)) throw new Error(`${configPath}: task must be one of ${TASKS.join(', ')}`);
    const version = file.version ?? 1;
    const key = sessionKey(id, version);
    const path = join(folder, 'model.onnx');
    const signature = await this.loadSessions(key, path);
    this.models.set(id, this.newEntry({ id, task, labels: file.labels, configMaxBatch: file.max_batch_size, version, key, path, signature }));
  }

  private newEntry(e: Pick<ModelEntry, 'id' | 'task' | 'labels' | 'configMaxBatch' | 'version' | 'key' | 'path' | 'signature'>): ModelEntry {
    return { ...e, loadedAt: new Date().toISOString(), served: 0, reloading: false, state: ModelState.READY, outstanding: 0 };
  }

  /** A model that takes new requests, or MODEL_NOT_FOUND. */
  private serving(id: string): ModelEntry {
    const entry = this.models.get(id);
    if (!entry || entry.state !== ModelState.READY) throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
    return entry;
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

  private loadSessions(key: string, path: string): Promise<Signature> {
    return this.serialised(async () => {
      try {
        return await this.pool.loadEverywhere(key, path, this.intraOpThreads);
      } catch (err) {
        throw new BalesError(ErrorCode.INVALID_MODEL, `cannot load ${relative(process.cwd(), path) || path} as an ONNX model: ${(err as Error).message}`);
      }
    });
  }

  private serialised<T>(change: () => Promise<T>): Promise<T> {
    const run = this.sessionChanges.then(change, change);
    this.sessionChanges = run.catch(() => undefined);
    return run;
  }

  /**
   * With glibc's defaults, native memory of released sessions is kept and RSS creeps with reloads (measured:
   * 0.14 MB per load of a 5 MB model; 0.09 MB with MALLOC_ARENA_MAX=2; none once MALLOC_MMAP_THRESHOLD_ is
   * fixed, as npm start and the image run it: README, Memory). A safety net for other allocators and models:
   * when RSS has grown WORKER_RECYCLE_RSS_GROWTH_PCT since the baseline, fresh worker threads take over and
   * the old ones, with what they hold, are terminated.
   */
  private recycleIfDue(): void {
    const pct = this.config.WORKER_RECYCLE_RSS_GROWTH_PCT;
    if (pct === 0 || process.memoryUsage.rss() < this.rssBaseline * (1 + pct / 100)) return;
    void this.serialised(async () => {
      const started = performance.now();
      // Only current versions: batches still running on a replaced one finish on the old threads first.
      const sessions = [...this.models.values()].map((e) => ({ key: e.key, path: e.path }));
      await this.pool.recycle(sessions, this.intraOpThreads);
      this.rssBaseline = process.memoryUsage.rss();
      this.logger.log(`recycled ${this.config.THREAD_POOL_SIZE} worker threads in ${(performance.now() - started).toFixed(0)} ms`);
    }).catch((err: Error) => this.logger.error(`recycling worker threads: ${err.message}`));
  }

  /** A replaced worker thread gets every current session again. */
  private reloadInto(index: number): void {
    for (const entry of this.models.values()) {
      this.pool.loadInto(index, entry.key, entry.path, this.intraOpThreads).catch((err: Error) => this.logger.error(`reloading ${entry.key} into worker ${index}: ${err.message}`));
    }
  }

  private describe(e: ModelEntry): ModelInfo {
    const batchDim = e.signature.inputs[0]?.shape[0];
    const batched = typeof batchDim === 'string' || batchDim === -1;
    const maxBatchSize = batched ? Math.min(this.config.MAX_BATCH_SIZE, e.configMaxBatch ?? Infinity) : 1;
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

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Why two signatures are not interchangeable, or undefined when they are. */
function signatureChange(a: Signature, b: Signature): string | undefined {
  const fmt = (s: Signature['inputs']) => s.map((t) => `${t.name}:${t.type}[${t.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : '?')).join(',')}]`).join(' ');
  if (fmt(a.inputs) !== fmt(b.inputs)) return `inputs ${fmt(a.inputs)} -> ${fmt(b.inputs)}`;
  if (fmt(a.outputs) !== fmt(b.outputs)) return `outputs ${fmt(a.outputs)} -> ${fmt(b.outputs)}`;
  return undefined;
}
