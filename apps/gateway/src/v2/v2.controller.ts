import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { BUILD_VERSION } from '../health/build-version';
import { ProbesService } from '../health/probes.service';
import { InferenceCall } from '../common/inference-call.decorator';
import { V2InferRequestDto } from './dto/v2-infer-request.dto';
import { V2ErrorDto, V2InferResponseDto, V2ModelMetadataDto, V2ServerMetadataDto } from './dto/v2-responses.dto';
import { V2Service } from './v2.service';

const errors = (...statuses: number[]) => statuses.map((status) => ApiResponse({ status, type: V2ErrorDto, description: 'Open Inference Protocol error body: {"error": "..."}' }));
const flag = (key: string, value: boolean, extra: Record<string, object> = {}) => ({ type: 'object', required: [...Object.keys(extra), key], properties: { ...extra, [key]: { type: 'boolean', example: value } } });
const MODEL_NAME = { name: { type: 'string', example: 'stub_v1' } };
const apply = (decorators: MethodDecorator[]): MethodDecorator => (target, key, descriptor) => decorators.forEach((d) => d(target, key, descriptor));

/** The Open Inference Protocol (KServe V2) REST endpoints, as Triton, KServe and MLServer clients speak it. */
@ApiTags('Open Inference Protocol (V2)')
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
    return { name: 'bales', version: BUILD_VERSION, extensions: [] };
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

  @Post('models/:name/infer')
  @HttpCode(200)
  @ApiOperation({ summary: 'Inference', description: 'Same queue, priorities (parameters.priority), deadlines (parameters.timeout_ms), batcher and backpressure as POST /infer. A batch of N rows joins the batcher as N rows.' })
  @ApiOkResponse({ type: V2InferResponseDto })
  @apply(errors(400, 404, 429, 503, 504))
  infer(@Param('name') name: string, @Body() body: V2InferRequestDto, @InferenceCall() call: InferenceCall): Promise<V2InferResponseDto> {
    return this.v2.infer(name, undefined, body, call);
  }

  @Post('models/:name/versions/:version/infer')
  @HttpCode(200)
  @ApiOperation({ summary: 'Inference at a version (only the version being served exists)' })
  @ApiOkResponse({ type: V2InferResponseDto })
  @apply(errors(400, 404, 429, 503, 504))
  inferVersion(
    @Param('name') name: string,
    @Param('version') version: string,
    @Body() body: V2InferRequestDto,
    @InferenceCall() call: InferenceCall,
  ): Promise<V2InferResponseDto> {
    return this.v2.infer(name, version, body, call);
  }

  private readiness(name: string, version: string | undefined, reply: FastifyReply): { name: string; ready: boolean } {
    const ready = this.v2.modelReady(name, version);
    if (!ready) reply.status(503);
    return { name, ready };
  }
}
