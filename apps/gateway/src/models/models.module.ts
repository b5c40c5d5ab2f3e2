import { Module } from '@nestjs/common';
import { ModelRegistryModule } from '@bales/model-registry';
import { ModelsController } from './models.controller';

@Module({ imports: [ModelRegistryModule], controllers: [ModelsController] })
export class ModelsModule {}
