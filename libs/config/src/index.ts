export { BalesConfig, ConfigError, LOG_LEVELS, loadConfig } from './bales-config';
export type { LogLevel, MetricsTimeUnit } from './bales-config';
export { ConfigModule } from './config.module';
export { redisOptionsFromUrl } from './redis-options';
