import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { EncodedRow, TensorInput, checkRow, encodePayload, encodeTensors } from './input-encoder';
import { ModelLifecycle } from './model-lifecycle';
import { MODEL_ID_PATTERN, MODEL_ID_RULE, ModelRepository } from './model-repository';
import type { Admission, BatchOutcome, ModelInfo, PrepareRequest, RegisterRequest, ReloadOutcome, TensorAdmission, UnloadOutcome } from './model-types';
import { WorkerPool } from './worker-pool';

/**
 * The models this replica serves, and the one place ONNX Runtime is reached from: the repository finds them on
 * disk, the lifecycle loads, swaps and drains them, and the worker pool holds their sessions in worker threads.
 * The event loop sees signatures and results, never a session.
 */
@Injectable()
export class ModelRegistry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ModelRegistry.name);
  private readonly repository: ModelRepository;
  private readonly pool: WorkerPool;
  private readonly lifecycle: ModelLifecycle;
  /** The models found at boot are loaded. */
  private booted = false;
  /** sha256 of weights files by path, with the size and mtime they were read at. */
  private readonly digests = new Map<string, { stamp: string; digest: string }>();

  constructor(private readonly config: BalesConfig) {
    this.repository = new ModelRepository(config.MODELS_DIR);
    this.pool = new WorkerPool(config, () => this.lifecycle.sessions());
    this.lifecycle = new ModelLifecycle(this.pool, this.repository, config.MAX_BATCH_SIZE);
  }

  /** How many batches can run at once: one per worker thread. */
  get slots(): number {
    return this.pool.size;
  }

  /** Loads every model folder; one that does not load is kept as failed (see ModelLifecycle) and the rest still serve. */
  async onModuleInit(): Promise<void> {
    this.pool.start();
    for (const id of this.repository.folders()) {
      if (!MODEL_ID_PATTERN.test(id)) {
        this.logger.error(`model folder '${id}' is not served: its name is not a valid model id (${MODEL_ID_RULE})`);
        continue;
      }
      const started = performance.now();
      // The lifecycle logs the reason of a model that does not load.
      const model = await this.lifecycle.loadFolder(id).catch(() => undefined);
      if (model) this.logger.log(`loaded ${id} v${model.version} in ${(performance.now() - started).toFixed(0)} ms`);
    }
    this.booted = true;
    this.pool.resetRssBaseline();
    if (!this.lifecycle.has(this.config.DEFAULT_MODEL_ID)) {
      this.logger.warn(`DEFAULT_MODEL_ID ${this.config.DEFAULT_MODEL_ID} is not in ${this.repository.root}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.close();
  }

  /** True once the models found at boot are loaded in every worker thread, until shutdown releases them. */
  get ready(): boolean {
    return this.booted && this.pool.running;
  }

  has(id: string): boolean {
    return this.lifecycle.has(id);
  }

  /** The model in any state (`failed` with its reason, `draining` while a DELETE finishes), or MODEL_NOT_FOUND. */
  get(id: string): ModelInfo {
    return this.lifecycle.get(id);
  }

  /** The model when it takes new requests; MODEL_UNAVAILABLE (failed or loading) or MODEL_NOT_FOUND when it does not. */
  serving(id: string): ModelInfo {
    return this.lifecycle.serving(id);
  }

  list(): ModelInfo[] {
    return this.lifecycle.list();
  }

  /**
   * Admits one request: checks the payload against the model's current signature (INVALID_INPUT naming the
   * expected shape) and counts the request until release(), so a DELETE can wait for it.
   */
  admit(id: string, payload: Record<string, unknown>): Admission {
    const { model, encoded, release } = this.lifecycle.admit(id, (inputs, axes) => encodePayload(inputs, axes, payload));
    return { model, row: encoded, release };
  }

  /**
   * Admits a request whose inputs are whole tensors with a leading batch dimension of N: N rows that
   * join the dynamic batcher like N requests, answered with every output tensor.
   */
  admitTensors(id: string, tensors: TensorInput[]): TensorAdmission {
    const { model, encoded, release } = this.lifecycle.admit(id, (inputs, axes) => encodeTensors(id, inputs, axes, tensors));
    return { model, rows: encoded, release };
  }

  /** Why a decoded queue row does not fit the inputs of its version (the served one when none is named), or undefined when it does. */
  checkRow(id: string, row: EncodedRow, version?: string): string | undefined {
    const model = this.lifecycle.inputs(id, version);
    return model ? checkRow(model.inputs, model.axes, row) : `model '${id}'${version === undefined ? '' : ` v${version}`} is not held here`;
  }

  /**
   * Runs rows as one batch on the least busy worker, on the version named (the served one when none is).
   * The version is pinned for the whole batch; a reload meanwhile releases it only after this returns.
   */
  run(id: string, rows: EncodedRow[], version?: string): Promise<BatchOutcome> {
    return this.lifecycle.run(id, rows, version);
  }

  /** The model versions this replica can run queued work for: every one whose sessions are up, served or not. */
  runnable(): { id: string; version: string }[] {
    return this.lifecycle.runnable();
  }

  /** A version this replica holds, with its own signature and batch axes; undefined when it holds none such. */
  version(id: string, version: string): ModelInfo | undefined {
    return this.lifecycle.version(id, version);
  }

  /** Calls `listener` whenever runnable() may have changed. */
  onChange(listener: () => void): void {
    this.lifecycle.onChange(listener);
  }

  /** The file a model serves, as MODELS_DIR names it (e.g. `stub_v1/model.onnx`). */
  weightsName(id: string): string {
    return this.repository.name(this.lifecycle.path(id));
  }

  /** A weights path as MODELS_DIR names it, checked as POST /models checks it (PATH_NOT_ALLOWED, FILE_NOT_FOUND). */
  locate(weightsPath: string): string {
    return this.repository.name(this.repository.resolveWeights(weightsPath));
  }

  /** The sha256 of a weights file inside MODELS_DIR, read as a stream so the event loop never blocks on it. */
  async digest(weightsPath: string): Promise<string> {
    const path = this.repository.resolveWeights(weightsPath);
    // Every catalog check and every replica of a call asks again: a file unchanged since is not read again.
    const { size, mtimeMs } = await stat(path);
    const stamp = `${size}:${mtimeMs}`;
    const known = this.digests.get(path);
    if (known?.stamp === stamp) return known.digest;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const digest = hash.digest('hex');
    this.digests.set(path, { stamp, digest });
    return digest;
  }

  /**
   * A fleet call's first phase on this replica: loads `version` beside the served one, or a new id hidden from
   * clients. Nothing is served from it until commit().
   */
  prepare(req: PrepareRequest): Promise<{ loadMs: number }> {
    if (!MODEL_ID_PATTERN.test(req.id)) throw new BalesError(ErrorCode.INVALID_REQUEST, MODEL_ID_RULE);
    return this.lifecycle.prepare(req);
  }

  /** New requests are admitted under `version`; the version served until now stays for its queued work until release(). */
  commit(id: string, version: number): void {
    this.lifecycle.commit(id, version);
  }

  /** Undoes a prepare() whose fleet call failed. */
  abort(id: string, version: number): Promise<void> {
    return this.lifecycle.abort(id, version);
  }

  /** No work is left anywhere for this version: its sessions go once its batches end (the model too, when it is being deleted). */
  release(id: string, version: number): void {
    this.lifecycle.release(id, version);
  }

  /** A fleet DELETE on this replica: 404 for new requests from now on; accepted work still runs until release(). */
  stopAdmission(id: string): { version: string; pending: number } {
    return this.lifecycle.stopAdmission(id);
  }

  /** Resolves once every request this replica accepted for the model has been answered. */
  drained(id: string): Promise<void> {
    return this.lifecycle.drained(id);
  }

  /**
   * Marks a model failed on this replica with the reason, releasing its sessions; the other replicas still serve it.
   * With `source`, a model this replica does not hold is kept as failed too (its file is missing or other here).
   */
  fail(id: string, reason: string, source?: { version: number; weightsPath: string; origin: 'folder' | 'api' }): void {
    this.lifecycle.fail(id, reason, source);
  }

  /**
   * Loads a model from a file inside MODELS_DIR under a new id, at runtime, beside the others, or in the place of a
   * failed model. A file that does not load leaves the model failed, and this throws INVALID_MODEL.
   */
  async register(req: RegisterRequest): Promise<ModelInfo> {
    if (!MODEL_ID_PATTERN.test(req.id)) throw new BalesError(ErrorCode.INVALID_REQUEST, MODEL_ID_RULE);
    return this.lifecycle.register(req);
  }

  /**
   * Stops taking new requests for a model (404 from then on), waits until every request this replica
   * accepted for it has been answered and its running batches have ended, then releases its sessions.
   */
  unregister(id: string): Promise<UnloadOutcome> {
    return this.lifecycle.unload(id);
  }

  /**
   * Hot swap: loads and warms the new weights in every worker next to the old ones, then switches
   * in one synchronous step. Batches already running finish on the old session, released after the last.
   * A failed model is loaded again instead: from `weightsPath` when given, else from where it came.
   */
  reload(id: string, weightsPath: string | undefined, allowSignatureChange = false): Promise<ReloadOutcome> {
    return this.lifecycle.reload(id, weightsPath, allowSignatureChange);
  }
}
