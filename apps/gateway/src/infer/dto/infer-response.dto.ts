import { ApiProperty } from '@nestjs/swagger';
import type { RowResult } from '@bales/model-registry';

/** One request's own row of its batch. */
export class InferResponseDto {
  @ApiProperty({ format: 'uuid', example: '5de9d31d-300b-40ed-a1ed-66afb1dea231', description: 'Also the request_id of every log line about this request' })
  request_id: string;
  @ApiProperty({ example: 'stub_v1' })
  model_id: string;
  @ApiProperty({ example: '1', description: 'Changes when the model is hot-swapped' })
  model_version: string;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    example: { label: 7, confidence: 0.1231 },
    description: 'classification: {label, confidence, label_name?}; regression: {values}; embedding: {embedding}; raw: {outputs}',
  })
  result: RowResult;
  /** End to end inside the gateway, from the request's arrival to its answer. */
  @ApiProperty({ example: 1.92 })
  latency_ms: number;
  /** Rows in the batch that carried this request. */
  @ApiProperty({ example: 1 })
  batch_size: number;
  /** Time from enqueueing until its batch started. */
  @ApiProperty({ example: 0.61 })
  queued_ms: number;
}
