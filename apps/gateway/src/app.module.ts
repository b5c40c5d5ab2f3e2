import { DynamicModule, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { BalesConfig, ConfigModule } from '@bales/config';
import { ModelRegistryModule } from '@bales/model-registry';
import { ObservabilityModule } from '@bales/observability';
import { InferRequestMetrics } from './common/infer-request-metrics';
import { HealthModule } from './health/health.module';
import { InferModule } from './infer/infer.module';
import { ModelsModule } from './models/models.module';
import { V2Module } from './v2/v2.module';

@Module({})
export class AppModule {
  static forRoot(config: BalesConfig, logger: Logger): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), ObservabilityModule.forRoot(config, logger), ModelRegistryModule, InferModule, HealthModule, ModelsModule, V2Module],
      // Request counts are an HTTP concern: they know the inference routes and the DEFAULT_MODEL_ID rule.
      providers: [InferRequestMetrics],
    };
  }
}
