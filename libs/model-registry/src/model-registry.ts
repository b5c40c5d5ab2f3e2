import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { EncodedRow, TensorInput, checkRow, encodePayload, encodeTensors } from './input-encoder';
import { ModelLifecycle } from './model-lifecycle';
import { MODEL_ID_PATTERN, MODEL_ID_RULE, ModelRepository } from './model-repository';
import type { Admission, BatchOutcome, ModelInfo, RegisterRequest, ReloadOutcome, TensorAdmission, UnloadOutcome } from './model-types';
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

  /** Why a decoded queue row does not fit the model's current inputs, or undefined when it does. */
  checkRow(id: string, row: EncodedRow): string | undefined {
    const model = this.lifecycle.inputs(id);
    return model ? checkRow(model.inputs, model.axes, row) : `model '${id}' is not registered`;
  }

  /**
   * Runs rows as one batch on the least busy worker, on the model's current version.
   * The version is pinned for the whole batch; a reload meanwhile releases it only after this returns.
   */
  run(id: string, rows: EncodedRow[]): Promise<BatchOutcome> {
    return this.lifecycle.run(id, rows);
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
