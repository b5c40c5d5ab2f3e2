import { IsDefined, IsIn, IsInt, IsObject, IsOptional, IsString, Matches, Min } from 'class-validator';
import { TASKS, type Task } from '@bales/model-registry';

/** POST /infer, the original BALES contract. */
export class InferRequestDto {
  /** Defaults to DEFAULT_MODEL_ID. */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, { message: 'model_id must be 1-128 letters, digits, _ . or -' })
  model_id?: string;

  /** Must match the model's task when given. */
  @IsOptional()
  @IsIn(TASKS, { message: `model_type must be one of ${TASKS.join(', ')}` })
  model_type?: Task;

  /** 1 is most urgent; the upper bound is PRIORITY_LEVELS, checked by the service. Defaults to 2. */
  @IsOptional()
  @IsInt({ message: 'priority must be an integer' })
  @Min(1, { message: 'priority must be at least 1' })
  priority?: number;

  /** How long the client will wait, in ms; at most BATCHER_TIMEOUT_S (checked by the service), which is the default. */
  @IsOptional()
  @IsInt({ message: 'timeout_ms must be an integer' })
  @Min(1, { message: 'timeout_ms must be at least 1' })
  timeout_ms?: number;

  /** `{input: number[]}` for single-input models; one key per input name otherwise. */
  @IsDefined({ message: 'payload is required' })
  @IsObject({ message: 'payload must be an object' })
  payload: Record<string, unknown>;
}
