import { Body, Controller, Delete, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ModelInfo, ModelRegistry, ReloadOutcome, UnloadOutcome } from '@bales/model-registry';
import { AdminTokenGuard } from './admin-token.guard';
import { RegisterModelDto } from './dto/register-model.dto';
import { ReloadModelDto } from './dto/reload-model.dto';

/** The management API: list, register, hot-swap and unload models at runtime. */
@Controller('models')
export class ModelsController {
  constructor(private readonly registry: ModelRegistry) {}

  @Get()
  list(): ModelInfo[] {
    return this.registry.list();
  }

  @Get(':id')
  get(@Param('id') id: string): ModelInfo {
    return this.registry.get(id);
  }

  @Post()
  @HttpCode(201)
  @UseGuards(AdminTokenGuard)
  register(@Body() body: RegisterModelDto): Promise<ModelInfo> {
    return this.registry.register({ id: body.model_id, weightsPath: body.weights_path, task: body.task, labels: body.labels, maxBatchSize: body.max_batch_size });
  }

  /** Hot swap: loads the new weights beside the old, then switches with no request dropped. */
  @Post(':id/reload')
  @HttpCode(200)
  @UseGuards(AdminTokenGuard)
  reload(@Param('id') id: string, @Body() body: ReloadModelDto): Promise<ReloadOutcome> {
    return this.registry.reload(id, body.weights_path, body.allow_signature_change ?? false);
  }

  /** Stops taking requests for the model, finishes those already accepted, then releases its sessions. */
  @Delete(':id')
  @UseGuards(AdminTokenGuard)
  unregister(@Param('id') id: string): Promise<UnloadOutcome> {
    return this.registry.unregister(id);
  }
}
