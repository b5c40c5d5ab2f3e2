import { Injectable } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelRegistry } from '@bales/model-registry';
import { InferenceQueue } from '@bales/queue';
import type { InferenceCall } from '../common/inference-call.decorator';
import { requestOptions, requestedModel } from '../common/request-options';
import { serverTiming } from '../common/server-timing';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferResponseDto } from './dto/infer-response.dto';

const round3 = (ms: number) => Math.round(ms * 1000) / 1000;

@Injectable()
export class InferService {
  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly queue: InferenceQueue,
  ) {}

  /** Validates the request against its model, queues it, and answers with its own row of the batch. */
  async infer(req: InferRequestDto, { requestId, receivedAt, onClientGone, setServerTiming }: InferenceCall): Promise<InferResponseDto> {
    const modelId = requestedModel(this.config, req.model_id);
    const { priority, timeoutMs } = requestOptions(this.config, req.priority, req.timeout_ms);
    // Counted until answered, so unloading the model waits for this request.
    const { model, row, release } = this.registry.admit(modelId, req.payload);
    if (req.model_type !== undefined && req.model_type !== model.task) {
      release();
      throw new BalesError(ErrorCode.INVALID_INPUT, `model_type '${req.model_type}' does not match model '${modelId}', a ${model.task} model`);
    }
    const submittedAt = performance.now();
    const out = await this.queue.submit({ requestId, modelId, version: model.version, priority, row, timeoutMs, onClientGone }).finally(release);
    const settledAt = performance.now();
    setServerTiming(serverTiming(receivedAt, submittedAt, settledAt, out));
    return {
      request_id: requestId,
      model_id: out.model_id,
      model_version: out.model_version,
      result: out.result,
      latency_ms: round3(settledAt - receivedAt),
      batch_size: out.batch_size,
      queued_ms: out.queued_ms,
    };
  }
}
