import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class V2TensorMetadataDto {
  @ApiProperty({ example: 'input' })
  name: string;

  @ApiProperty({ example: 'FP32' })
  datatype: string;

  @ApiProperty({ type: [Number], example: [-1, 128], description: '-1 marks a dynamic dimension' })
  shape: number[];

  @ApiPropertyOptional({ type: Object, example: { batch_axis: 0 }, description: "The tensor's batch axis, when it has one: where a request's rows are stacked" })
  parameters?: { batch_axis: number };
}

export class V2ModelParametersDto {
  @ApiProperty({ example: 32, description: 'Rows per batch; 1 when the model runs one request per run' })
  max_batch_size: number;

  @ApiPropertyOptional({ example: "output 'total' [4] has no batch axis, so a batch's results could not be told apart", description: 'Why the model runs one request per run, when its batch axes cannot be determined' })
  unbatched_reason?: string;
}

export class V2ModelMetadataDto {
  @ApiProperty({ example: 'stub_v1' })
  name: string;

  @ApiProperty({ type: [String], example: ['1'] })
  versions: string[];

  @ApiProperty({ example: 'onnxruntime_onnx' })
  platform: string;

  @ApiProperty({ type: [V2TensorMetadataDto] })
  inputs: V2TensorMetadataDto[];

  @ApiProperty({ type: [V2TensorMetadataDto] })
  outputs: V2TensorMetadataDto[];

  @ApiPropertyOptional({ type: V2ModelParametersDto })
  parameters?: V2ModelParametersDto;

  @ApiPropertyOptional({ enum: ['loading', 'failed', 'draining'], example: 'failed', description: 'Present only while the model takes no requests' })
  state?: string;

  @ApiPropertyOptional({ example: 'cannot load vad/model.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)', description: 'Why a failed model did not load' })
  reason?: string;
}

export class V2OutputTensorDto {
  @ApiProperty({ example: 'probabilities' })
  name: string;

  @ApiProperty({ type: [Number], example: [1, 10] })
  shape: number[];

  @ApiProperty({ example: 'FP32' })
  datatype: string;

  @ApiPropertyOptional({ type: [Number], description: 'Flat, row-major; absent for an output sent as binary tensor data' })
  data?: (number | boolean)[];

  @ApiPropertyOptional({ type: Object, example: { binary_data_size: 40 }, description: "An output sent as binary tensor data: its bytes' length, after the JSON response" })
  parameters?: { binary_data_size: number };
}

export class V2InferResponseDto {
  @ApiProperty({ example: 'stub_v1' })
  model_name: string;

  @ApiProperty({ example: '1' })
  model_version: string;

  @ApiProperty({ example: 'my-request-1' })
  id: string;

  @ApiProperty({ type: [V2OutputTensorDto] })
  outputs: V2OutputTensorDto[];
}

export class V2ServerMetadataDto {
  @ApiProperty({ example: 'bales' })
  name: string;

  @ApiProperty({ example: '0.1.0' })
  version: string;

  @ApiProperty({ type: [String], example: ['binary_tensor_data'] })
  extensions: string[];
}

export class V2ErrorDto {
  @ApiProperty({ example: "input 'input': shape [1, 3] does not fit input input of shape [-1, 128] (-1: any size)" })
  error: string;
}
