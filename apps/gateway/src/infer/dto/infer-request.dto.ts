import { IsDefined, IsIn, IsInt, IsObject, IsOptional, IsString, Matches, Min } from 'class-validator';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { MODEL_ID_PATTERN, MODEL_ID_RULE, TASKS, type Task } from '@bales/model-registry';
import { FlatDto } from '../../common/body-validation.pipe';
import { STUB_EXAMPLE_INPUT } from '../../common/stub-example';

/** POST /infer, the original BALES contract. */
@FlatDto()
export class InferRequestDto {
  /** Defaults to DEFAULT_MODEL_ID. */
  @ApiPropertyOptional({ example: 'stub_v1', description: 'Defaults to DEFAULT_MODEL_ID', pattern: MODEL_ID_PATTERN.source })
  @IsOptional()
  @IsString()
  @Matches(MODEL_ID_PATTERN, { message: MODEL_ID_RULE })
  model_id?: string;

  /** Must match the model's task when given. */
  @ApiPropertyOptional({ enum: TASKS, example: 'classification', description: "Must match the model's task when given" })
  @IsOptional()
  @IsIn(TASKS, { message: `model_type must be one of ${TASKS.join(', ')}` })
  model_type?: Task;

  /** 1 is most urgent; the upper bound is PRIORITY_LEVELS, checked by the service. Defaults to 2. */
  @ApiPropertyOptional({ type: 'integer', minimum: 1, example: 2, default: 2, description: '1 is most urgent, up to PRIORITY_LEVELS' })
  @IsOptional()
  @IsInt({ message: 'priority must be an integer' })
  @Min(1, { message: 'priority must be at least 1' })
  priority?: number;

  /** How long the client will wait, in ms; at most BATCHER_TIMEOUT_S (checked by the service), which is the default. */
  @ApiPropertyOptional({ type: 'integer', minimum: 1, example: 2000, description: 'How long the client will wait, in ms: 504 after that. At most, and by default, BATCHER_TIMEOUT_S' })
  @IsOptional()
  @IsInt({ message: 'timeout_ms must be an integer' })
  @Min(1, { message: 'timeout_ms must be at least 1' })
  timeout_ms?: number;

  /** `{input: number[]}` for single-input models; one key per input name otherwise. */
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: "{input: number[]} for single-input models (flat or nested), one key per input name otherwise; checked against the model's signature",
    example: { input: STUB_EXAMPLE_INPUT },
  })
  @IsDefined({ message: 'payload is required' })
  @IsObject({ message: 'payload must be an object' })
  payload: Record<string, unknown>;
}
