import { Injectable } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelInfo, ModelRegistry, ModelState, TensorSpec } from '@bales/model-registry';
import { InferenceQueue, InferOutcome } from '@bales/queue';
import type { InferenceCall } from '../common/inference-call.decorator';
import { requestOptions } from '../common/request-options';
import { lastToFinish, serverTiming } from '../common/server-timing';
import { binaryOutputs, binaryTensorInputs, isBinaryDatatype, tensorBytes } from './binary-tensor-data';
import { V2Datatype, V2InferRequestDto } from './dto/v2-infer-request.dto';
import { V2InferResponseDto, V2ModelMetadataDto, V2OutputTensorDto, V2TensorMetadataDto } from './dto/v2-responses.dto';

/** ONNX Runtime element types as the Open Inference Protocol names them. */
const V2_NAMES: Record<string, V2Datatype> = { bool: 'BOOL', uint8: 'UINT8', int8: 'INT8', int32: 'INT32', int64: 'INT64', float32: 'FP32', float64: 'FP64' };

/** An element type as the protocol names it; one it has no name for, in capitals. */
const v2Datatype = (type: string): string => V2_NAMES[type] ?? type.toUpperCase();

/** A tensor's metadata, with its batch axis as a parameter when it has one. */
const tensorMetadata = (spec: TensorSpec, model: ModelInfo): V2TensorMetadataDto => {
  const axis = model.batchAxes[spec.name];
  const shape = spec.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
  return { name: spec.name, datatype: v2Datatype(spec.type), shape, ...(axis !== null && axis !== undefined ? { parameters: { batch_axis: axis } } : {}) };
};

type RowTensor = { shape: number[]; data: (number | boolean)[] };
type RawRow = { outputs: Record<string, RowTensor> };

/**
 * Rows' slices of one output as one tensor, the batch at the output's axis: out[i, r, j] = row_r[i, j]. With no
 * batch axis (a model that runs one request per run) the one row's tensor is the output.
 */
function stackSlices(slices: RowTensor[], axis: number | null): RowTensor {
  const [first] = slices;
  if (axis === null) return first;
  const shape = [...first.shape.slice(0, axis), slices.length, ...first.shape.slice(axis)];
  if (axis === 0) return { shape, data: slices.flatMap((s) => s.data) };
  const runs = first.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const run = first.data.length / runs;
  const data = new Array<number | boolean>(first.data.length * slices.length);
  let k = 0;
  for (let o = 0; o < runs; o++) for (const s of slices) for (let j = o * run; j < (o + 1) * run; j++) data[k++] = s.data[j];
  return { shape, data };
}

/** An output whose bytes (`parts` in order) join `binary`, the tensor naming their size instead of holding the data. */
function binaryTensor(name: string, shape: number[], datatype: string, parts: RowTensor['data'][], binary: Buffer[]): V2OutputTensorDto {
  const bytes = tensorBytes(datatype as V2Datatype, parts);
  binary.push(bytes);
  return { name, shape, datatype, parameters: { binary_data_size: bytes.length } };
}

/** An inference answer: the response, and the bytes of each output it sends as binary tensor data, in output order. */
export interface V2InferAnswer {
  response: V2InferResponseDto;
  /** Empty when every output is in the JSON. */
  tensors: Buffer[];
}

/**
 * The Open Inference Protocol (KServe V2) over the same queue, priorities, batcher and deadlines as
 * POST /infer: a tensor with a batch of N rows is admitted as N rows and answered as one response.
 */
@Injectable()
export class V2Service {
  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly queue: InferenceQueue,
  ) {}

  metadata(name: string, version?: string): V2ModelMetadataDto {
    const model = this.model(name, version);
    return {
      name,
      versions: [model.version],
      platform: 'onnxruntime_onnx',
      inputs: model.signature.inputs.map((s) => tensorMetadata(s, model)),
      outputs: model.signature.outputs.map((s) => tensorMetadata(s, model)),
      parameters: { max_batch_size: model.maxBatchSize, ...(model.unbatchedReason ? { unbatched_reason: model.unbatchedReason } : {}) },
      // A model that takes no requests says why, as GET /models does.
      ...(model.state !== ModelState.READY && { state: model.state, ...(model.reason !== undefined && { reason: model.reason }) }),
    };
  }

  /** Whether the model takes requests: false while a DELETE drains it. */
  modelReady(name: string, version?: string): boolean {
    return this.model(name, version).state === 'ready' && this.registry.ready;
  }

  /** `tensorData` is the bytes after the JSON header of a body with binary tensor data; undefined for a JSON body. */
  async infer(name: string, version: string | undefined, req: V2InferRequestDto, { requestId, receivedAt, onClientGone, setServerTiming }: InferenceCall, tensorData?: Buffer): Promise<V2InferAnswer> {
    const model = this.model(name, version, true);
    const { priority, timeoutMs } = requestOptions(this.config, req.parameters?.priority, req.parameters?.timeout_ms, 'parameters.');
    for (const input of req.inputs) {
      const spec = model.signature.inputs.find((s) => s.name === input.name);
      if (spec && V2_NAMES[spec.type] !== input.datatype) {
        throw new BalesError(ErrorCode.INVALID_REQUEST, `input '${input.name}' is ${V2_NAMES[spec.type] ?? spec.type} in model '${name}', got datatype ${input.datatype}`);
      }
    }
    const outputs = req.outputs?.map((o) => o.name) ?? model.signature.outputs.map((o) => o.name);
    const unknown = outputs.find((o) => !model.signature.outputs.some((s) => s.name === o));
    if (unknown !== undefined) throw new BalesError(ErrorCode.INVALID_REQUEST, `unknown output '${unknown}'; model '${name}' has ${model.signature.outputs.map((s) => s.name).join(', ')}`);
    const binary = binaryOutputs(req, outputs);
    outputs.forEach((o, i) => {
      const datatype = this.datatype(model, o);
      if (binary[i] && !isBinaryDatatype(datatype)) throw new BalesError(ErrorCode.INVALID_REQUEST, `output '${o}' is ${datatype}, which is sent only as JSON`);
    });
    const inputs = binaryTensorInputs(req.inputs, tensorData);

    let admission;
    try {
      admission = this.registry.admitTensors(name, inputs);
    } catch (err) {
      // The protocol answers every tensor that does not fit with 400.
      if (err instanceof BalesError && err.code === ErrorCode.INVALID_INPUT) throw new BalesError(ErrorCode.INVALID_REQUEST, err.message);
      throw err;
    }
    try {
      const submittedAt = performance.now();
      const settled = await Promise.allSettled(
        admission.rows.map((row, i) => this.queue.submit({ requestId: `${requestId}/${i}`, modelId: name, version: admission.model.version, priority, row, timeoutMs, onClientGone, direct: admission.rows.length === 1 })),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      const rows = settled.map((s) => (s as PromiseFulfilledResult<InferOutcome>).value);
      setServerTiming(serverTiming(receivedAt, submittedAt, performance.now(), lastToFinish(rows)));
      const tensors: Buffer[] = [];
      const stacked = outputs.map((o, i) => this.stack(model, o, rows, binary[i] ? tensors : undefined));
      return { response: { model_name: name, model_version: rows[0].model_version, id: req.id ?? requestId, outputs: stacked }, tensors };
    } finally {
      admission.release();
    }
  }

  /**
   * One output tensor of the response: every row's slice, stacked along the output's batch axis. With `binary`, its
   * bytes join that list and the tensor names their size instead of holding the data.
   */
  private stack(model: ModelInfo, name: string, rows: InferOutcome[], binary?: Buffer[]): V2OutputTensorDto {
    const slices = rows.map((r) => (r.result as RawRow).outputs[name]);
    const datatype = this.datatype(model, name);
    const axis = model.batchAxes[name] ?? null;
    // Along axis 0 the rows' data are the tensor's in order: their bytes are written as they are, unstacked.
    if (binary && axis === 0) return binaryTensor(name, [rows.length, ...slices[0].shape], datatype, slices.map((s) => s.data), binary);
    const { shape, data } = stackSlices(slices, axis);
    return binary ? binaryTensor(name, shape, datatype, [data], binary) : { name, shape, datatype, data };
  }

  /** An output's datatype as the protocol names it. */
  private datatype(model: ModelInfo, output: string): string {
    return v2Datatype(model.signature.outputs.find((s) => s.name === output)!.type);
  }

  /**
   * The model, at the version asked for if any: only the version being served exists. With `serving`, only while it
   * takes requests: MODEL_UNAVAILABLE (503) when it is failed or loading.
   */
  private model(name: string, version?: string, serving = false): ModelInfo {
    const model = serving ? this.registry.serving(name) : this.registry.get(name);
    if (version !== undefined && version !== model.version) {
      throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${name}' has no version '${version}'; it serves version '${model.version}'`);
    }
    return model;
  }
}
