import { Body, Controller, Delete, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { ModelInfo } from '@bales/model-registry';
import { ApiErrors } from '../errors/error-response.dto';
import { AdminTokenGuard } from './admin-token.guard';
import { ModelDetailDto, ModelInfoDto, RegisteredModelDto, ReloadOutcomeDto, UnloadOutcomeDto, toReloadOutcomeDto, toUnloadOutcomeDto } from './dto/model-info.dto';
import { RegisterModelDto } from './dto/register-model.dto';
import { ReloadModelDto } from './dto/reload-model.dto';
import { ModelsService } from './models.service';

/** The management API: list, register, hot-swap and unload models at runtime. */
const MODEL_ID = ApiParam({ name: 'id', example: 'stub_v1' });
const ADMIN = 'needs Authorization: Bearer <ADMIN_TOKEN> when ADMIN_TOKEN is set';
const LOOPBACK_ONLY = 'ADMIN_TOKEN is not set and the client is not on loopback';
const ADMIN_ACCESS = `${ADMIN}; answered only from loopback while it is not`;
const FLEET = 'Made on any replica, it holds on every live replica sharing the Redis, and answers once all of them have carried it out.';

@ApiTags('models')
@Controller('models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get()
  @ApiOperation({ summary: 'List the served models' })
  @ApiOkResponse({ type: [ModelInfoDto] })
  list(): ModelInfo[] {
    return this.models.list();
  }

  @Get(':id')
  @ApiOperation({ summary: "One model: version, task, signature, state and counts, and each live replica's version and state" })
  @MODEL_ID
  @ApiOkResponse({ type: ModelDetailDto })
  @ApiErrors({ 404: "model 'made_up' is not registered" })
  get(@Param('id') id: string): ModelInfo {
    return this.models.get(id);
  }

  @Post()
  @HttpCode(201)
  @UseGuards(AdminTokenGuard)
  @ApiOperation({ summary: 'Serve another ONNX file from MODELS_DIR under a new id on every live replica, or in the place of a failed model', description: `${ADMIN_ACCESS}. ${FLEET}` })
  @ApiBearerAuth()
  @ApiCreatedResponse({ type: RegisteredModelDto })
  @ApiErrors({
    400: 'weights_path must lie inside MODELS_DIR',
    401: ADMIN,
    403: LOOPBACK_ONLY,
    404: 'weights_path does not exist',
    409: "model 'stub_v1' already exists (an id whose model is failed is taken again), or a call on it is in progress",
    422: 'the file does not load on a replica (named), or its bytes differ there: no replica serves it',
    503: 'Redis is unreachable',
    504: 'a live replica did not answer within FLEET_CALL_TIMEOUT_S: no replica serves it',
  })
  register(@Body() body: RegisterModelDto): Promise<ModelInfo> {
    return this.models.register(body);
  }

  /** Hot swap: loads the new weights beside the old, then switches with no request dropped. A failed model is loaded again. */
  @Post(':id/reload')
  @HttpCode(200)
  @UseGuards(AdminTokenGuard)
  @ApiOperation({
    summary: 'Hot-swap the weights with no request dropped, or load a failed model again',
    description: `${ADMIN_ACCESS}. ${FLEET} Two phases: every live replica loads and warms the new weights beside the old, and only when all have does any switch; requests admitted after the answer run on the new version, those admitted before on the version they were admitted under. Without weights_path, a model that failed on some replicas is loaded again there (after its file or config.json was fixed in place).`,
  })
  @ApiBearerAuth()
  @MODEL_ID
  @ApiOkResponse({ type: ReloadOutcomeDto })
  @ApiErrors({
    400: 'weights_path must lie inside MODELS_DIR, or is missing for a ready model',
    401: ADMIN,
    403: LOOPBACK_ONLY,
    404: "model 'made_up' is not registered",
    409: 'signature change refused, or a call on the model is already in progress on some replica',
    422: 'the file does not load on a replica (named), or its config.json warm-up sample fails: the old version keeps serving everywhere',
    503: 'Redis is unreachable',
    504: 'a live replica did not answer within FLEET_CALL_TIMEOUT_S: the old version keeps serving everywhere',
  })
  async reload(@Param('id') id: string, @Body() body: ReloadModelDto): Promise<ReloadOutcomeDto> {
    return toReloadOutcomeDto(await this.models.reload(id, body));
  }

  /** Stops taking requests for the model, finishes those already accepted, then releases its sessions. */
  @Delete(':id')
  @UseGuards(AdminTokenGuard)
  @ApiOperation({ summary: 'Stop taking requests for the model on every live replica, answer those accepted anywhere, then release it; a failed model goes at once', description: `${ADMIN_ACCESS}. ${FLEET}` })
  @ApiBearerAuth()
  @MODEL_ID
  @ApiOkResponse({ type: UnloadOutcomeDto })
  @ApiErrors({ 401: ADMIN, 403: LOOPBACK_ONLY, 404: "model 'made_up' is not registered", 409: 'the model is loading, or a call on it is in progress', 503: 'Redis is unreachable' })
  async unregister(@Param('id') id: string): Promise<UnloadOutcomeDto> {
    return toUnloadOutcomeDto(await this.models.unregister(id));
  }
}
