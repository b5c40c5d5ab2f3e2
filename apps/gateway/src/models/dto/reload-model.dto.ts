import { IsBoolean, IsNotEmpty, IsOptional, IsString, MaxLength } from 'class-validator';

/** POST /models/:id/reload, the original contract plus an explicit opt-in to signature changes. */
export class ReloadModelDto {
  /** An ONNX file inside MODELS_DIR, e.g. ./models/stub_v2.onnx */
  @IsString({ message: 'weights_path must be a string' })
  @IsNotEmpty({ message: 'weights_path must not be empty' })
  @MaxLength(4096)
  weights_path: string;

  @IsOptional()
  @IsBoolean({ message: 'allow_signature_change must be a boolean' })
  allow_signature_change?: boolean;
}
