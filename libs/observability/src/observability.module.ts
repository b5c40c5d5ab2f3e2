import { DynamicModule, Global, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { LoggerModule } from 'nestjs-pino';
import type { Logger } from 'pino';
import { BalesConfig } from '@bales/config';
import { ModelRegistryModule } from '@bales/model-registry';
import { BalesMetrics } from './metrics';
import { MetricsController } from './metrics.controller';
import { InferRequestMetrics } from './request-metrics';

@Global()
@Module({})
export class ObservabilityModule {
  /**
   * Metrics for every module, GET /metrics when ENABLE_PROMETHEUS, and Nest's logger on the process's pino
   * logger. nestjs-pino reuses Fastify's per-request child logger (useExisting), so lines logged while serving
   * a request carry its request_id.
   */
  static forRoot(config: BalesConfig, logger: Logger): DynamicModule {
    const prometheus = config.ENABLE_PROMETHEUS ? [PrometheusModule.register({ controller: MetricsController, defaultMetrics: { enabled: false } })] : [];
    return {
      module: ObservabilityModule,
      imports: [LoggerModule.forRoot({ pinoHttp: { logger }, useExisting: true }), ModelRegistryModule, ...prometheus],
      providers: [BalesMetrics, InferRequestMetrics],
      exports: [BalesMetrics],
    };
  }
}
