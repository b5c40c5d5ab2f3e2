import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsNotEmpty, IsOptional, IsString, MaxLength } from 'class-validator';

/**
 * POST /models/:id/reload, the original contract plus an explicit opt-in to signature changes; and, for a failed
 * model, loading it again, where weights_path is optional.
 */
export class ReloadModelDto {
  /** An ONNX file inside MODELS_DIR, e.g. ./models/stub_v2.onnx */
  @ApiPropertyOptional({
    example: './models/stub_v2.onnx',
    description:
      'An ONNX file inside MODELS_DIR; relative paths are read from the working directory, then MODELS_DIR. Required to hot-swap a ready model; ' +
      'a failed model without it is loaded again from where it came (its MODELS_DIR folder, config.json included, or the file it was registered from)',
  })
  @IsOptional()
  @IsString({ message: 'weights_path must be a string' })
  @IsNotEmpty({ message: 'weights_path must not be empty' })
  @MaxLength(4096)
  weights_path?: string;

  @ApiPropertyOptional({ default: false, description: 'Accept weights whose inputs or outputs differ from the current ones' })
  @IsOptional()
  @IsBoolean({ message: 'allow_signature_change must be a boolean' })
  allow_signature_change?: boolean;
}
