import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { ConfigError } from '@bales/config';
import { createGatewayApp } from './app.factory';
import { exitGracefullyOnSignals } from './shutdown';

async function bootstrap(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const { app, config } = await createGatewayApp(process.env);
  exitGracefullyOnSignals(app, config);
  await app.listen({ port: config.PORT, host: config.HOST });
  new Logger('Gateway').log(`BALES listening on ${await app.getUrl()} (models: ${config.MODELS_DIR}, redis: ${config.REDIS_URL.replace(/\/\/[^@]*@/, '//***@')})`);
}

bootstrap().catch((err: unknown) => {
  // A bad setting is one clear line, not a stack trace.
  if (err instanceof ConfigError) console.error(err.message);
  else console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
