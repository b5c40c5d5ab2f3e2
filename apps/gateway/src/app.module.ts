import { DynamicModule, Module } from '@nestjs/common';
import { BalesConfig, ConfigModule } from '@bales/config';
import { HealthModule } from './health/health.module';
import { InferModule } from './infer/infer.module';
import { ModelsModule } from './models/models.module';

@Module({})
export class AppModule {
  static forRoot(config: BalesConfig): DynamicModule {
    return { module: AppModule, imports: [ConfigModule.forRoot(config), InferModule, HealthModule, ModelsModule] };
  }
}
