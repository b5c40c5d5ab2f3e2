import { Module } from '@nestjs/common';
import { FleetModule } from '@bales/fleet';
import { ModelRegistryModule } from '@bales/model-registry';
import { ModelsController } from './models.controller';
import { ModelsService } from './models.service';

@Module({ imports: [ModelRegistryModule, FleetModule], controllers: [ModelsController], providers: [ModelsService] })
export class ModelsModule {}
