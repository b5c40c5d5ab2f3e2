import { LogLevel as NestLogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { BalesConfig, LogLevel, loadConfig } from '@bales/config';
import { AppModule } from './app.module';
import { BodyValidationPipe } from './common/body-validation.pipe';
import { ErrorFilter } from './errors/error.filter';

const NEST_LEVELS: Record<LogLevel, NestLogLevel[]> = {
  fatal: ['fatal'],
  error: ['fatal', 'error'],
  warn: ['fatal', 'error', 'warn'],
  info: ['fatal', 'error', 'warn', 'log'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug'],
  trace: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
};

/** Builds the gateway (validated config, Fastify, validation, error mapping), initialised but not listening. */
export async function createGatewayApp(env: Record<string, string | undefined>): Promise<{ app: NestFastifyApplication; config: BalesConfig }> {
  const config = loadConfig(env);
  const adapter = new FastifyAdapter({ bodyLimit: config.MAX_BODY_BYTES });
  // Only JSON bodies are accepted; anything else is 415 rather than a string the DTO cannot describe.
  adapter.getInstance().removeContentTypeParser('text/plain');
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    logger: NEST_LEVELS[config.LOG_LEVEL],
    // Boot failures reach the caller (main prints one line) instead of exiting the process from inside Nest.
    abortOnError: false,
  });
  app.useGlobalFilters(new ErrorFilter());
  app.useGlobalPipes(new BodyValidationPipe());
  app.enableShutdownHooks();
  await app.init();
  return { app, config };
}
