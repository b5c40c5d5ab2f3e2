import { Body, Controller, Delete, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { ModelInfo } from '@bales/model-registry';
import { ApiErrors } from '../errors/error-response.dto';
import { AdminTokenGuard } from './admin-token.guard';
import { ModelInfoDto, ReloadOutcomeDto, UnloadOutcomeDto, toReloadOutcomeDto, toUnloadOutcomeDto } from './dto/model-info.dto';
import { RegisterModelDto } from './dto/register-model.dto';
import { ReloadModelDto } from './dto/reload-model.dto';
import { ModelsService } from './models.service';

/** The management API: list, register, hot-swap and unload models at runtime. */
const MODEL_ID = ApiParam({ name: 'id', example: 'stub_v1' });
const ADMIN = 'needs Authorization: Bearer <ADMIN_TOKEN> when ADMIN_TOKEN is set';
const LOOPBACK_ONLY = 'ADMIN_TOKEN is not set and the client is not on loopback';
const ADMIN_ACCESS = `${ADMIN}; answered only from loopback while it is not`;

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
  @ApiOperation({ summary: 'One model: version, task, signature, state and counts' })
  @MODEL_ID
  @ApiOkResponse({ type: ModelInfoDto })
  @ApiErrors({ 404: "model 'made_up' is not registered" })
  get(@Param('id') id: string): ModelInfo {
    return this.models.get(id);
  }

  @Post()
  @HttpCode(201)
  @UseGuards(AdminTokenGuard)
  @ApiOperation({ summary: 'Serve another ONNX file from MODELS_DIR under a new id, or in the place of a failed model', description: ADMIN_ACCESS })
  @ApiBearerAuth()
  @ApiCreatedResponse({ type: ModelInfoDto })
  @ApiErrors({
    400: 'weights_path must lie inside MODELS_DIR',
    401: ADMIN,
    403: LOOPBACK_ONLY,
    404: 'weights_path does not exist',
    409: "model 'stub_v1' already exists (an id whose model is failed is taken again)",
    422: 'the file does not load: ONNX Runtime cannot parse it, or lacks an operator or opset it uses; the model is then kept as failed',
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
    description: `${ADMIN_ACCESS}. A failed model is loaded again (after its file or config.json was fixed in place), from weights_path when given, else from where it came; it is then ready, or failed with the new reason.`,
  })
  @ApiBearerAuth()
  @MODEL_ID
  @ApiOkResponse({ type: ReloadOutcomeDto })
  @ApiErrors({
    400: 'weights_path must lie inside MODELS_DIR, or is missing for a ready model',
    401: ADMIN,
    403: LOOPBACK_ONLY,
    404: "model 'made_up' is not registered",
    409: 'signature change refused, or a reload is already running',
    422: 'the file does not load, or its config.json warm-up sample fails',
  })
  async reload(@Param('id') id: string, @Body() body: ReloadModelDto): Promise<ReloadOutcomeDto> {
    return toReloadOutcomeDto(await this.models.reload(id, body));
  }

  /** Stops taking requests for the model, finishes those already accepted, then releases its sessions. */
  @Delete(':id')
  @UseGuards(AdminTokenGuard)
  @ApiOperation({ summary: 'Stop taking requests for the model, answer those accepted, then release it; a failed model goes at once', description: ADMIN_ACCESS })
  @ApiBearerAuth()
  @MODEL_ID
  @ApiOkResponse({ type: UnloadOutcomeDto })
  @ApiErrors({ 401: ADMIN, 403: LOOPBACK_ONLY, 404: "model 'made_up' is not registered", 409: 'the model is loading' })
  async unregister(@Param('id') id: string): Promise<UnloadOutcomeDto> {
    return toUnloadOutcomeDto(await this.models.unregister(id));
  }
}
