import { DynamicModule, Global, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { LoggerModule } from 'nestjs-pino';
import type { Logger } from 'pino';
import { BalesConfig } from '@bales/config';
import { BalesMetrics } from './metrics';
import { MetricsController } from './metrics.controller';

@Global()
@Module({})
export class ObservabilityModule {
  /**
   * Metrics for every module, GET /metrics when ENABLE_PROMETHEUS, and Nest's logger on the process's pino logger.
   * Request lines carry request_id through Fastify's per-request child logger (see fastifyLogging). nestjs-pino's
   * request-context middleware is left off (forRoutes: []): its AsyncLocalStorage puts a hook on every promise in
   * the process, a cost every request pays (docs/benchmarks.md, Measurements behind design choices).
   */
  static forRoot(config: BalesConfig, logger: Logger): DynamicModule {
    const prometheus = config.ENABLE_PROMETHEUS ? [PrometheusModule.register({ controller: MetricsController, defaultMetrics: { enabled: false } })] : [];
    return {
      module: ObservabilityModule,
      imports: [LoggerModule.forRoot({ pinoHttp: { logger }, useExisting: true, forRoutes: [] }), ...prometheus],
      providers: [BalesMetrics],
      exports: [BalesMetrics],
    };
  }
}
