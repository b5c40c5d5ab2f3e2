import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ModelInfo, ModelRegistry, ReloadOutcome } from '@bales/model-registry';
import { ReloadModelDto } from './dto/reload-model.dto';

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

  /** Hot swap: loads the new weights beside the old, then switches with no request dropped. */
  @Post(':id/reload')
  @HttpCode(200)
  reload(@Param('id') id: string, @Body() body: ReloadModelDto): Promise<ReloadOutcome> {
    return this.registry.reload(id, body.weights_path, body.allow_signature_change ?? false);
  }
}
