export { ObservabilityModule } from './observability.module';
export { BalesMetrics, BATCH_SIZE_BUCKETS, MS_BUCKETS } from './metrics';
export type { ModelStateSample, QueueDepthSample, ReloadResult, WorkerLoad } from './metrics';
export { createLogger, fastifyLogging } from './logging';
