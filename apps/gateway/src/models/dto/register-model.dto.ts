import { ArrayMaxSize, IsArray, IsIn, IsInt, IsNotEmpty, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { MODEL_ID_PATTERN, MODEL_ID_RULE, TASKS, type Task } from '@bales/model-registry';

/** POST /models: serve another ONNX file from MODELS_DIR under a new id. */
export class RegisterModelDto {
  @ApiProperty({ example: 'stub_v2', pattern: MODEL_ID_PATTERN.source })
  @IsString({ message: 'model_id must be a string' })
  @Matches(MODEL_ID_PATTERN, { message: MODEL_ID_RULE })
  model_id: string;

  /** An ONNX file inside MODELS_DIR. */
  @ApiProperty({ example: './models/stub_v2.onnx', description: 'An ONNX file inside MODELS_DIR' })
  @IsString({ message: 'weights_path must be a string' })
  @IsNotEmpty({ message: 'weights_path must not be empty' })
  @MaxLength(4096)
  weights_path: string;

  @ApiProperty({ enum: TASKS, example: 'classification' })
  @IsIn(TASKS, { message: `task must be one of ${TASKS.join(', ')}` })
  task: Task;

  /** Names for classification labels, by index. */
  @ApiPropertyOptional({ type: [String], description: 'Names for classification labels, by index' })
  @IsOptional()
  @IsArray({ message: 'labels must be an array of strings' })
  @ArrayMaxSize(100000)
  @IsString({ each: true, message: 'labels must be an array of strings' })
  labels?: string[];

  /** Caps the rows per batch below MAX_BATCH_SIZE for this model. */
  @ApiPropertyOptional({ minimum: 1, maximum: 4096, description: 'Caps the rows per batch below MAX_BATCH_SIZE for this model' })
  @IsOptional()
  @IsInt({ message: 'max_batch_size must be an integer' })
  @Min(1, { message: 'max_batch_size must be at least 1' })
  @Max(4096, { message: 'max_batch_size must be at most 4096' })
  max_batch_size?: number;
}
