import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiConsumes, ApiExtraModels, ApiHeader, ApiOkResponse, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { BUILD_VERSION } from '../health/build-version';
import { ProbesService } from '../health/probes.service';
import { InferenceCall } from '../common/inference-call.decorator';
import { V2InferRequestDto } from './dto/v2-infer-request.dto';
import { V2ErrorDto, V2InferResponseDto, V2ModelMetadataDto, V2ServerMetadataDto } from './dto/v2-responses.dto';
import { V2InferAnswer, V2Service } from './v2.service';
import { BINARY_TENSOR_ROUTE, BinaryTensorData } from './binary-tensor-body';
import { binaryBody, INFERENCE_HEADER_CONTENT_LENGTH } from './binary-tensor-data';

const errors = (...statuses: number[]) => statuses.map((status) => ApiResponse({ status, type: V2ErrorDto, description: 'Open Inference Protocol error body: {"error": "..."}' }));
const flag = (key: string, value: boolean, extra: Record<string, object> = {}) => ({ type: 'object', required: [...Object.keys(extra), key], properties: { ...extra, [key]: { type: 'boolean', example: value } } });
const MODEL_NAME = { name: { type: 'string', example: 'stub_v1' } };
const apply = (decorators: MethodDecorator[]): MethodDecorator => (target, key, descriptor) => decorators.forEach((d) => d(target, key, descriptor));

const BINARY_TENSOR_DATA =
  'Binary tensor data (the KServe and Triton extension): with the Inference-Header-Content-Length header, whatever the Content-Type, the body is that many bytes of ' +
  'this JSON request, then the raw little-endian bytes of every input that has parameters.binary_data_size instead of data, in input order. ' +
  'parameters.binary_data_output: true, or parameters.binary_data: true on an output, answers those outputs the same way: application/octet-stream, ' +
  'Inference-Header-Content-Length giving the JSON response\'s length, then the bytes of each output that has parameters.binary_data_size. BYTES is not supported.';
/** The infer routes: JSON or binary tensor data in, JSON or binary tensor data out. */
const inferRoute = (path: string, summary: string, description = ''): MethodDecorator =>
  apply([
    Post(path),
    HttpCode(200),
    RouteConfig(BINARY_TENSOR_ROUTE),
    ApiOperation({ summary, description: `${description}${BINARY_TENSOR_DATA}` }),
    // The binary form's body starts with the same JSON request, so both media types name its schema.
    ApiConsumes('application/json', 'application/octet-stream'),
    ApiHeader({ name: 'Inference-Header-Content-Length', required: false, description: 'Binary tensor data: the length in bytes of the JSON request at the start of the body' }),
    ApiOkResponse({
      description: 'JSON; or, with binary outputs, the JSON response followed by their bytes',
      headers: { 'Inference-Header-Content-Length': { description: 'With binary outputs: the length in bytes of the JSON response at the start of the body', schema: { type: 'integer' } } },
      content: {
        'application/json': { schema: { $ref: getSchemaPath(V2InferResponseDto) } },
        'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
      },
    }),
    ...errors(400, 404, 413, 415, 429, 503, 504),
  ]);

/** The answer as JSON, or framed as binary tensor data when an output goes as bytes. */
function reply(res: FastifyReply, { response, tensors }: V2InferAnswer): V2InferResponseDto | Buffer {
  if (tensors.length === 0) return response;
  const { body, headerLength } = binaryBody(response, tensors);
  res.header(INFERENCE_HEADER_CONTENT_LENGTH, headerLength).type('application/octet-stream');
  return body;
}

/** The Open Inference Protocol (KServe V2) REST endpoints, as Triton, KServe and MLServer clients speak it. */
@ApiTags('Open Inference Protocol (V2)')
@ApiExtraModels(V2InferResponseDto)
@Controller('v2')
export class V2Controller {
  constructor(
    private readonly v2: V2Service,
    private readonly probes: ProbesService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Server metadata' })
  @ApiOkResponse({ type: V2ServerMetadataDto })
  server(): V2ServerMetadataDto {
    // Named as Triton names it; clients may check it before sending binary tensors.
    return { name: 'bales', version: BUILD_VERSION, extensions: ['binary_tensor_data'] };
  }

  @Get('health/live')
  @ApiOperation({ summary: 'Server liveness' })
  @ApiOkResponse({ schema: flag('live', true) })
  live(): { live: boolean } {
    return { live: true };
  }

  @Get('health/ready')
  @ApiOperation({ summary: 'Server readiness: Redis reachable, models loaded, not shutting down; 503 otherwise' })
  @ApiOkResponse({ schema: flag('ready', true) })
  @ApiResponse({ status: 503, schema: flag('ready', false) })
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ ready: boolean }> {
    const ready = await this.probes.ready().then(
      () => true,
      () => false,
    );
    if (!ready) reply.status(503);
    return { ready };
  }

  @Get('models/:name')
  @ApiOperation({ summary: 'Model metadata: inputs and outputs read from the ONNX file (-1 marks a dynamic dimension)' })
  @ApiOkResponse({ type: V2ModelMetadataDto })
  @apply(errors(404))
  metadata(@Param('name') name: string): V2ModelMetadataDto {
    return this.v2.metadata(name);
  }

  @Get('models/:name/versions/:version')
  @ApiOperation({ summary: 'Model metadata at a version (only the version being served exists)' })
  @ApiOkResponse({ type: V2ModelMetadataDto })
  @apply(errors(404))
  versionMetadata(@Param('name') name: string, @Param('version') version: string): V2ModelMetadataDto {
    return this.v2.metadata(name, version);
  }

  @Get('models/:name/ready')
  @ApiOperation({ summary: 'Model readiness: 200 when it takes requests, 503 while it is being unloaded' })
  @ApiOkResponse({ schema: flag('ready', true, MODEL_NAME) })
  @ApiResponse({ status: 503, schema: flag('ready', false, MODEL_NAME) })
  @apply(errors(404))
  modelReady(@Param('name') name: string, @Res({ passthrough: true }) reply: FastifyReply): { name: string; ready: boolean } {
    return this.readiness(name, undefined, reply);
  }

  @Get('models/:name/versions/:version/ready')
  @ApiOperation({ summary: 'Model readiness at a version' })
  @ApiOkResponse({ schema: flag('ready', true, MODEL_NAME) })
  @ApiResponse({ status: 503, schema: flag('ready', false, MODEL_NAME) })
  @apply(errors(404))
  versionReady(@Param('name') name: string, @Param('version') version: string, @Res({ passthrough: true }) reply: FastifyReply): { name: string; ready: boolean } {
    return this.readiness(name, version, reply);
  }

  @inferRoute(
    'models/:name/infer',
    'Inference',
    'Same queue, priorities (parameters.priority), deadlines (parameters.timeout_ms), batcher and backpressure as POST /infer. A batch of N rows joins the batcher as N rows. ',
  )
  async infer(
    @Param('name') name: string,
    @Body() body: V2InferRequestDto,
    @BinaryTensorData() tensorData: Buffer | undefined,
    @InferenceCall() call: InferenceCall,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<V2InferResponseDto | Buffer> {
    return reply(res, await this.v2.infer(name, undefined, body, call, tensorData));
  }

  @inferRoute('models/:name/versions/:version/infer', 'Inference at a version (only the version being served exists)')
  async inferVersion(
    @Param('name') name: string,
    @Param('version') version: string,
    @Body() body: V2InferRequestDto,
    @BinaryTensorData() tensorData: Buffer | undefined,
    @InferenceCall() call: InferenceCall,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<V2InferResponseDto | Buffer> {
    return reply(res, await this.v2.infer(name, version, body, call, tensorData));
  }

  private readiness(name: string, version: string | undefined, reply: FastifyReply): { name: string; ready: boolean } {
    const ready = this.v2.modelReady(name, version);
    if (!ready) reply.status(503);
    return { name, ready };
  }
}
