import { Module } from '@nestjs/common';
import { ModelRegistryModule } from '@bales/model-registry';
import { ModelsController } from './models.controller';
import { ModelsService } from './models.service';

@Module({ imports: [ModelRegistryModule], controllers: [ModelsController], providers: [ModelsService] })
export class ModelsModule {}
