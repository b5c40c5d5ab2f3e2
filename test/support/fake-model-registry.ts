import { BalesError, ErrorCode } from '@bales/errors';
import { MODEL_ID_PATTERN, ModelState } from '@bales/model-registry';
import type {
  Admission,
  BatchOutcome,
  EncodedRow,
  ModelInfo,
  ModelRegistry,
  RegisterRequest,
  ReloadOutcome,
  RowResult,
  Signature,
  Task,
  TensorAdmission,
  TensorInput,
  TensorSpec,
  UnloadOutcome,
} from '@bales/model-registry';
import { batchLayout } from '../../libs/model-registry/src/batch-axes';
import { checkRow, encodePayload, encodeTensors } from '../../libs/model-registry/src/input-encoder';
import { classify } from '../../libs/model-registry/src/postprocess';
import { TYPED_ARRAYS, type ElementType } from '../../libs/model-registry/src/protocol';

/** What the queue and the gateway use of the registry: its public members. */
export type ModelRegistryApi = Pick<ModelRegistry, keyof ModelRegistry>;

/** The shipped stub's signature: 128 floats in, 10 class probabilities out. */
export const STUB_SIGNATURE: Signature = {
  inputs: [{ name: 'input', type: 'float32', shape: ['batch', 128] }],
  outputs: [{ name: 'probabilities', type: 'float32', shape: ['batch', 10] }],
};

export interface FakeModel {
  id: string;
  task?: Task;
  labels?: string[];
  signature?: Signature;
  /** The model's own bound (config.json's max_batch_size); MAX_BATCH_SIZE applies above it. */
  maxBatchSize?: number;
  version?: number;
  /** The reason a model is kept as failed: it takes no requests, and answers MODEL_UNAVAILABLE. */
  failed?: string;
}

export interface FakeRegistryOptions {
  /** Batches that can run at once (THREAD_POOL_SIZE). */
  slots?: number;
  /** MAX_BATCH_SIZE. */
  maxBatchSize?: number;
  /** Weights paths register and reload accept, with the signature the file would have; any other path is missing. */
  weights?: Record<string, Signature>;
}

interface Entry {
  model: Required<Pick<FakeModel, 'id' | 'task' | 'signature' | 'version'>> & Pick<FakeModel, 'labels' | 'maxBatchSize' | 'failed'>;
  state: ModelState;
  loadedAt: string;
  served: number;
  pending: number;
  running: number;
  onIdle?: () => void;
}

/**
 * An in-memory ModelRegistry for unit tests of the glue (services, consumer, runner): no ONNX Runtime and
 * no worker threads. Payloads are checked and encoded by the real input encoder, so INVALID_INPUT messages
 * are the gateway's own. A batch answers each row from that row's own first values (a classifier takes the
 * argmax of its first `width` inputs), so results are deterministic and tell rows apart. It holds one version per
 * model, its current one: work admitted under another is not held here, as on a replica that released it.
 */
export class FakeModelRegistry implements ModelRegistryApi {
  ready = true;
  readonly slots: number;
  /** Every batch run, in order, with the version it ran on. */
  readonly batches: { modelId: string; version: string; rows: EncodedRow[] }[] = [];
  /** Runs before each batch is answered: return a promise to hold the batch, throw to fail it (INFERENCE_FAILED). */
  beforeRun?: (modelId: string, rows: EncodedRow[]) => void | Promise<void>;
  private readonly maxBatchSize: number;
  private readonly weights: Map<string, Signature>;
  private readonly models = new Map<string, Entry>();
  private readonly listeners: (() => void)[] = [];

  constructor(models: FakeModel[] = [{ id: 'stub_v1' }], options: FakeRegistryOptions = {}) {
    this.slots = options.slots ?? 2;
    this.maxBatchSize = options.maxBatchSize ?? 32;
    this.weights = new Map(Object.entries(options.weights ?? { 'stub_v2.onnx': STUB_SIGNATURE }));
    for (const m of models) this.add(m);
  }

  /** Serves another model at once, as a model folder found at boot would be. */
  add(m: FakeModel): ModelInfo {
    const model = { task: 'classification' as Task, signature: STUB_SIGNATURE, version: 1, ...m };
    const entry: Entry = { model, state: m.failed ? ModelState.FAILED : ModelState.READY, loadedAt: new Date().toISOString(), served: 0, pending: 0, running: 0 };
    this.models.set(m.id, entry);
    this.changed();
    return this.info(entry);
  }

  async onModuleInit(): Promise<void> {
    this.ready = true;
  }

  async onApplicationShutdown(): Promise<void> {
    this.ready = false;
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  get(id: string): ModelInfo {
    return this.info(this.entry(id));
  }

  list(): ModelInfo[] {
    return [...this.models.values()].map((e) => this.info(e));
  }

  serving(id: string): ModelInfo {
    return this.info(this.takingRequests(id));
  }

  admit(id: string, payload: Record<string, unknown>): Admission {
    const entry = this.takingRequests(id);
    const row = encodePayload(entry.model.signature.inputs, batchLayout(entry.model.signature).inputs, payload);
    return { model: this.info(entry), row, release: this.lease(entry) };
  }

  admitTensors(id: string, tensors: TensorInput[]): TensorAdmission {
    const entry = this.takingRequests(id);
    const rows = encodeTensors(id, entry.model.signature.inputs, batchLayout(entry.model.signature).inputs, tensors);
    return { model: this.info(entry), rows, release: this.lease(entry) };
  }

  /** The fake holds one version per model: its current one, while it is up. */
  checkRow(id: string, row: EncodedRow, version?: string): string | undefined {
    const entry = this.held(id, version);
    if (!entry) return `model '${id}'${version === undefined ? '' : ` v${version}`} is not held here`;
    return checkRow(entry.model.signature.inputs, batchLayout(entry.model.signature).inputs, row);
  }

  runnable(): { id: string; version: string }[] {
    return [...this.models.values()].filter((e) => this.held(e.model.id)).map((e) => ({ id: e.model.id, version: String(e.model.version) }));
  }

  version(id: string, version: string): ModelInfo | undefined {
    const entry = this.held(id, version);
    return entry && this.info(entry);
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async run(id: string, rows: EncodedRow[], asked?: string): Promise<BatchOutcome> {
    const entry = this.entry(id);
    const version = String(entry.model.version);
    if (asked !== undefined && !this.held(id, asked)) {
      throw new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${id}' v${asked} is not held by the replica that took this request`, { model_id: id, state: entry.state });
    }
    const startedAt = Date.now();
    entry.running++;
    try {
      await this.beforeRun?.(id, rows);
      this.batches.push({ modelId: id, version, rows });
      entry.served += rows.length;
      return { version, results: rows.map((r) => answer(entry.model, r)), startedAt, inferenceMs: 0 };
    } catch (err) {
      throw new BalesError(ErrorCode.INFERENCE_FAILED, `inference failed on ${id}@${version}: ${(err as Error).message}`);
    } finally {
      entry.running--;
      this.checkIdle(entry);
    }
  }

  async register(req: RegisterRequest): Promise<ModelInfo> {
    if (!MODEL_ID_PATTERN.test(req.id)) throw new BalesError(ErrorCode.INVALID_REQUEST, 'model_id must be 1-128 letters, digits, _ . or -');
    if (this.models.has(req.id)) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
    const signature = this.weightsAt(req.weightsPath);
    return this.add({ id: req.id, task: req.task, labels: req.labels, maxBatchSize: req.maxBatchSize, signature });
  }

  async reload(id: string, weightsPath: string | undefined, allowSignatureChange = false): Promise<ReloadOutcome> {
    const entry = this.takingRequests(id);
    if (weightsPath === undefined) {
      throw new BalesError(ErrorCode.INVALID_REQUEST, `weights_path is required to hot-swap model '${id}', which is ready; only a failed model is loaded again without one`);
    }
    const signature = this.weightsAt(weightsPath);
    if (!allowSignatureChange && JSON.stringify(signature) !== JSON.stringify(entry.model.signature)) {
      throw new BalesError(ErrorCode.MODEL_CONFLICT, 'signature change refused; send allow_signature_change: true to accept it');
    }
    const oldVersion = entry.model.version;
    entry.model = { ...entry.model, signature, version: oldVersion + 1 };
    entry.loadedAt = new Date().toISOString();
    this.changed();
    return { modelId: id, oldVersion: String(oldVersion), newVersion: String(oldVersion + 1), loadMs: 0 };
  }

  async unregister(id: string): Promise<UnloadOutcome> {
    const entry = this.takingRequests(id);
    const started = performance.now();
    entry.state = ModelState.DRAINING;
    const drainedRequests = entry.pending;
    await new Promise<void>((resolve) => {
      entry.onIdle = resolve;
      this.checkIdle(entry);
    });
    this.models.delete(id);
    this.changed();
    return { modelId: id, version: String(entry.model.version), drainedRequests, drainMs: performance.now() - started };
  }

  // A fleet call's steps on one replica: the glue's unit tests never reach them.
  weightsName(): string {
    throw new Error('not in the fake');
  }

  locate(): string {
    throw new Error('not in the fake');
  }

  digest(): Promise<string> {
    throw new Error('not in the fake');
  }

  prepare(): Promise<{ loadMs: number }> {
    throw new Error('not in the fake');
  }

  commit(): void {
    throw new Error('not in the fake');
  }

  abort(): Promise<void> {
    throw new Error('not in the fake');
  }

  release(): void {
    throw new Error('not in the fake');
  }

  stopAdmission(): { version: string; pending: number } {
    throw new Error('not in the fake');
  }

  drained(): Promise<void> {
    throw new Error('not in the fake');
  }

  fail(): void {
    throw new Error('not in the fake');
  }

  private weightsAt(path: string): Signature {
    const signature = this.weights.get(path);
    if (!signature) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${path} does not exist`);
    return signature;
  }

  private entry(id: string): Entry {
    const entry = this.models.get(id);
    if (!entry) throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
    return entry;
  }

  /** The model when it holds `version` (its current one when none is named) ready to run: a failed model holds none. */
  private held(id: string, version?: string): Entry | undefined {
    const entry = this.models.get(id);
    if (!entry || (entry.state !== ModelState.READY && entry.state !== ModelState.DRAINING)) return undefined;
    return version === undefined || version === String(entry.model.version) ? entry : undefined;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private takingRequests(id: string): Entry {
    const entry = this.models.get(id);
    if (entry?.state === ModelState.FAILED) {
      const reason = entry.model.failed!;
      throw new BalesError(ErrorCode.MODEL_UNAVAILABLE, `model '${id}' is failed: ${reason}`, { model_id: id, state: entry.state, reason });
    }
    if (!entry || entry.state !== ModelState.READY) throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${id}' is not registered`);
    return entry;
  }

  private lease(entry: Entry): () => void {
    entry.pending++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.pending--;
      this.checkIdle(entry);
    };
  }

  private checkIdle(entry: Entry): void {
    if (entry.state !== ModelState.DRAINING || entry.pending > 0 || entry.running > 0 || !entry.onIdle) return;
    const wake = entry.onIdle;
    entry.onIdle = undefined;
    wake();
  }

  private info(e: Entry): ModelInfo {
    const layout = batchLayout(e.model.signature);
    return {
      id: e.model.id,
      version: String(e.model.version),
      task: e.model.task,
      labels: e.model.labels,
      signature: e.model.signature,
      maxBatchSize: layout.unbatched ? 1 : Math.min(this.maxBatchSize, e.model.maxBatchSize ?? Infinity),
      batchAxes: layout.axes,
      unbatchedReason: layout.unbatched,
      state: e.state,
      ...(e.model.failed !== undefined && { reason: e.model.failed }),
      loadedAt: e.loadedAt,
      requestsServed: e.served,
      requestsPending: e.pending,
    };
  }
}

/** The values of an output's item: its fixed dimensions (a dynamic one counts 1). */
const width = (spec: TensorSpec) => spec.shape.slice(1).reduce<number>((n, d) => n * (typeof d === 'number' && d > 0 ? d : 1), 1);

/** A row's first input as numbers. */
function values(spec: TensorSpec, buffer: Buffer): number[] {
  const Typed = TYPED_ARRAYS[spec.type as ElementType] ?? Float32Array;
  const copy = new Uint8Array(buffer).slice().buffer;
  return Array.from(new Typed(copy, 0, Math.floor(copy.byteLength / Typed.BYTES_PER_ELEMENT)) as ArrayLike<number | bigint>, Number);
}

/** The row's first `n` input values, padded with zeros. */
const firstValues = (row: number[], n: number) => Array.from({ length: n }, (_, i) => row[i] ?? 0);

function answer(model: Entry['model'], row: EncodedRow): RowResult {
  const { inputs, outputs } = model.signature;
  const x = values(inputs[0], row.buffers[0]);
  if (row.raw || model.task === 'raw') {
    return {
      outputs: Object.fromEntries(
        outputs.map((o) => [o.name, { shape: o.shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : 1)), data: firstValues(x, width(o)) }]),
      ),
    };
  }
  const out = firstValues(x, width(outputs[0]));
  if (model.task === 'classification') return classify(out, model.labels);
  if (model.task === 'regression') return { values: out };
  return { embedding: out };
}
