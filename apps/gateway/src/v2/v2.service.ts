import { Injectable } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelInfo, ModelRegistry, TensorSpec } from '@bales/model-registry';
import { InferenceQueue, InferOutcome } from '@bales/queue';
import type { InferenceCall } from '../common/inference-call.decorator';
import { requestOptions } from '../common/request-options';
import { V2Datatype, V2InferRequestDto } from './dto/v2-infer-request.dto';
import { V2InferResponseDto, V2ModelMetadataDto, V2OutputTensorDto, V2TensorMetadataDto } from './dto/v2-responses.dto';

/** ONNX Runtime element types as the Open Inference Protocol names them. */
const V2_NAMES: Record<string, V2Datatype> = { bool: 'BOOL', uint8: 'UINT8', int8: 'INT8', int32: 'INT32', int64: 'INT64', float32: 'FP32', float64: 'FP64' };

const tensorMetadata = (spec: TensorSpec): V2TensorMetadataDto => ({
  name: spec.name,
  datatype: V2_NAMES[spec.type] ?? spec.type.toUpperCase(),
  shape: spec.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
});

type RawRow = { outputs: Record<string, { shape: number[]; data: (number | boolean)[] }> };

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
      inputs: model.signature.inputs.map(tensorMetadata),
      outputs: model.signature.outputs.map(tensorMetadata),
    };
  }

  /** Whether the model takes requests: false while a DELETE drains it. */
  modelReady(name: string, version?: string): boolean {
    return this.model(name, version).state === 'ready' && this.registry.ready;
  }

  async infer(name: string, version: string | undefined, req: V2InferRequestDto, { requestId, onClientGone }: InferenceCall): Promise<V2InferResponseDto> {
    const model = this.model(name, version);
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

    let admission;
    try {
      admission = this.registry.admitTensors(name, req.inputs);
    } catch (err) {
      // The protocol answers every tensor that does not fit with 400.
      if (err instanceof BalesError && err.code === ErrorCode.INVALID_INPUT) throw new BalesError(ErrorCode.INVALID_REQUEST, err.message);
      throw err;
    }
    try {
      const settled = await Promise.allSettled(
        admission.rows.map((row, i) => this.queue.submit({ requestId: `${requestId}/${i}`, modelId: name, priority, row, timeoutMs, onClientGone })),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      const rows = settled.map((s) => (s as PromiseFulfilledResult<InferOutcome>).value);
      return { model_name: name, model_version: rows[0].model_version, id: req.id ?? requestId, outputs: outputs.map((o) => this.stack(model, o, rows)) };
    } finally {
      admission.release();
    }
  }

  /** One output tensor of the response: every row's slice, stacked along the batch dimension. */
  private stack(model: ModelInfo, name: string, rows: InferOutcome[]): V2OutputTensorDto {
    const slices = rows.map((r) => (r.result as RawRow).outputs[name]);
    const spec = model.signature.outputs.find((s) => s.name === name)!;
    return { name, shape: [rows.length, ...slices[0].shape], datatype: V2_NAMES[spec.type] ?? spec.type.toUpperCase(), data: slices.flatMap((s) => s.data) };
  }

  /** The model, at the version asked for if any: only the version being served exists. */
  private model(name: string, version?: string): ModelInfo {
    const model = this.registry.get(name);
    if (version !== undefined && version !== model.version) {
      throw new BalesError(ErrorCode.MODEL_NOT_FOUND, `model '${name}' has no version '${version}'; it serves version '${model.version}'`);
    }
    return model;
  }
}
