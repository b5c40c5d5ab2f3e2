import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsBoolean, IsDefined, IsIn, IsInt, IsObject, IsOptional, IsString, MaxLength, Min, ValidateIf, ValidateNested } from 'class-validator';
import { OpaqueArrays } from '../../common/body-validation.pipe';
import { STUB_EXAMPLE_INPUT } from '../../common/stub-example';

/** The Open Inference Protocol datatypes BALES accepts. */
export const V2_DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT32', 'INT64', 'FP32', 'FP64'] as const;
export type V2Datatype = (typeof V2_DATATYPES)[number];

export class V2InputTensorDto {
  @ApiProperty({ example: 'input' })
  @IsString({ message: 'inputs[].name must be a string' })
  @MaxLength(256)
  name: string;

  @ApiProperty({
    type: [Number],
    example: [1, 128],
    description: "The dimension at the input's batch axis (the model metadata's batch_axis, often 0) is the batch: N rows join the dynamic batcher as N requests; [] for a scalar",
  })
  @IsArray({ message: 'inputs[].shape must be an array of integers' })
  @ArrayMaxSize(32)
  @IsInt({ each: true, message: 'inputs[].shape must be an array of integers' })
  @Min(0, { each: true, message: 'inputs[].shape dimensions must not be negative' })
  shape: number[];

  @ApiProperty({ enum: V2_DATATYPES, example: 'FP32' })
  @IsIn(V2_DATATYPES, { message: ({ value }) => `inputs[].datatype must be one of ${V2_DATATYPES.join(', ')}; got ${(JSON.stringify(value) ?? String(value)).slice(0, 40)}` })
  datatype: V2Datatype;

  @ApiPropertyOptional({ type: Object, example: { binary_data_size: 512 }, description: "binary_data_size: the input's data is that many bytes of binary tensor data after the JSON (see Inference-Header-Content-Length)" })
  @IsOptional()
  @IsObject()
  parameters?: Record<string, unknown>;

  @ApiProperty({ type: [Number], example: STUB_EXAMPLE_INPUT, description: 'Flat in row-major order, or nested to the shape; absent when parameters.binary_data_size is given' })
  // An input sent as binary tensor data has no data; one with both is refused where the binary data is read.
  @ValidateIf((input: V2InputTensorDto) => input.data !== undefined || input.parameters?.binary_data_size === undefined)
  @IsDefined({ message: 'inputs[].data is required' })
  @IsArray({ message: 'inputs[].data must be an array' })
  data: unknown[];
}

export class V2RequestedOutputDto {
  @ApiProperty({ example: 'probabilities' })
  @IsString({ message: 'outputs[].name must be a string' })
  name: string;

  @ApiPropertyOptional({ type: Object, example: { binary_data: true }, description: 'binary_data: true answers this output as binary tensor data, false as JSON, whatever parameters.binary_data_output says' })
  @IsOptional()
  @IsObject()
  parameters?: Record<string, unknown>;
}

/** Open Inference Protocol parameters BALES reads: the same priority and deadline as POST /infer, and binary outputs. */
export class V2ParametersDto {
  @ApiPropertyOptional({ example: 2, description: '1 is most urgent; up to PRIORITY_LEVELS' })
  @IsOptional()
  @IsInt({ message: 'parameters.priority must be an integer' })
  @Min(1, { message: 'parameters.priority must be at least 1' })
  priority?: number;

  @ApiPropertyOptional({ example: 1000, description: 'Deadline in ms, at most BATCHER_TIMEOUT_S' })
  @IsOptional()
  @IsInt({ message: 'parameters.timeout_ms must be an integer' })
  @Min(1, { message: 'parameters.timeout_ms must be at least 1' })
  timeout_ms?: number;

  @ApiPropertyOptional({ example: false, description: 'true answers every output as binary tensor data, unless its own parameters.binary_data says otherwise' })
  @IsOptional()
  @IsBoolean({ message: 'parameters.binary_data_output must be a boolean' })
  binary_data_output?: boolean;
}

/** POST /v2/models/{name}/infer. Each input's data is checked value by value where it is encoded. */
@OpaqueArrays('inputs', 'data')
export class V2InferRequestDto {
  @ApiPropertyOptional({ example: 'my-request-1' })
  @IsOptional()
  @IsString({ message: 'id must be a string' })
  @MaxLength(256)
  id?: string;

  @ApiPropertyOptional({ type: V2ParametersDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => V2ParametersDto)
  parameters?: V2ParametersDto;

  @ApiProperty({ type: [V2InputTensorDto] })
  @IsArray({ message: 'inputs must be an array' })
  @ArrayMinSize(1, { message: 'inputs must hold at least one tensor' })
  @ArrayMaxSize(64)
  // class-validator's nested check walks into an array inside the array: such an entry is refused here by name.
  @IsObject({ each: true, message: 'inputs must hold tensor objects, one per input' })
  @ValidateNested({ each: true })
  @Type(() => V2InputTensorDto)
  inputs: V2InputTensorDto[];

  @ApiPropertyOptional({ type: [V2RequestedOutputDto] })
  @IsOptional()
  @IsArray({ message: 'outputs must be an array' })
  @ArrayMaxSize(64)
  @IsObject({ each: true, message: 'outputs must hold objects, one per output' })
  @ValidateNested({ each: true })
  @Type(() => V2RequestedOutputDto)
  outputs?: V2RequestedOutputDto[];
}
