import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiResponse } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';

/** The body of every error answer (see ErrorBody in error.filter.ts). */
export class ErrorResponseDto {
  @ApiProperty({ example: 422 })
  statusCode: number;

  @ApiProperty({ example: 'Unprocessable Entity' })
  error: string;

  @ApiProperty({ description: 'What was wrong, naming the field or the expected shape', example: 'payload.input: expected float32[128] (128 values), got 3 values' })
  message: string;

  @ApiProperty({ format: 'uuid', description: 'The id of the request, as its log lines carry it' })
  request_id: string;
}

/** Documents the error answers of an endpoint: for each status, when it happens, with an example body. */
export function ApiErrors(errors: Record<number, string>): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...Object.entries(errors).map(([status, when]) =>
      ApiResponse({ status: Number(status), description: when, type: ErrorResponseDto, example: { statusCode: Number(status), error: STATUS_CODES[Number(status)], message: when } }),
    ),
  );
}
