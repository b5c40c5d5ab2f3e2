import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class V2TensorMetadataDto {
  @ApiProperty({ example: 'input' })
  name: string;

  @ApiProperty({ example: 'FP32' })
  datatype: string;

  @ApiProperty({ type: [Number], example: [-1, 128], description: '-1 marks a dynamic dimension' })
  shape: number[];
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
