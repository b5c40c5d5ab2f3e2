import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelRegistry } from '@bales/model-registry';
import { InferenceQueue } from '@bales/queue';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferResponseDto } from './dto/infer-response.dto';

const DEFAULT_PRIORITY = 2;
const round3 = (ms: number) => Math.round(ms * 1000) / 1000;

@Injectable()
export class InferService {
  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly queue: InferenceQueue,
  ) {}

  /** Validates the request against its model, queues it, and answers with its own row of the batch. */
  async infer(req: InferRequestDto, receivedAt: number, clientGone?: AbortSignal, requestId: string = randomUUID()): Promise<InferResponseDto> {
    try {
      const modelId = req.model_id ?? this.config.DEFAULT_MODEL_ID;
      const levels = this.config.PRIORITY_LEVELS;
      const priority = req.priority ?? Math.min(DEFAULT_PRIORITY, levels);
      if (priority > levels) throw new BalesError(ErrorCode.INVALID_REQUEST, `priority must be an integer from 1 to ${levels}`);
      const maxTimeoutMs = Math.floor(this.config.BATCHER_TIMEOUT_S * 1000);
      if (req.timeout_ms !== undefined && req.timeout_ms > maxTimeoutMs) {
        throw new BalesError(ErrorCode.INVALID_REQUEST, `timeout_ms must be an integer from 1 to ${maxTimeoutMs}`);
      }
      const task = this.registry.get(modelId).task;
      if (req.model_type !== undefined && req.model_type !== task) {
        throw new BalesError(ErrorCode.INVALID_INPUT, `model_type '${req.model_type}' does not match model '${modelId}', a ${task} model`);
      }
      // Counted until answered, so unloading the model waits for this request.
      const { row, release } = this.registry.admit(modelId, req.payload);
      const timeoutMs = req.timeout_ms ?? this.config.BATCHER_TIMEOUT_S * 1000;
      const out = await this.queue.submit({ requestId, modelId, priority, row, timeoutMs, signal: clientGone }).finally(release);
      return {
        request_id: requestId,
        model_id: out.model_id,
        model_version: out.model_version,
        result: out.result,
        latency_ms: round3(performance.now() - receivedAt),
        batch_size: out.batch_size,
        queued_ms: out.queued_ms,
      };
    } catch (err) {
      if (err instanceof BalesError) err.requestId ??= requestId;
      throw err;
    }
  }
}
