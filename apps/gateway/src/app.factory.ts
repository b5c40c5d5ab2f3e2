import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import type { Logger as PinoLogger } from 'pino';
import { BalesConfig, loadConfig } from '@bales/config';
import { BalesMetrics, createLogger, fastifyLogging } from '@bales/observability';
import { PendingRequests } from '@bales/queue';
import { AppModule } from './app.module';
import { BUILD_VERSION } from './health/build-version';
import { BodyValidationPipe } from './common/body-validation.pipe';
import { parseJsonBody } from './common/json-body.parser';
import { growHeapForLargeBodies } from './common/large-body-heap';
import { ErrorFilter } from './errors/error.filter';
import { useBinaryTensorBodies } from './v2/binary-tensor-body';

/** Fastify as the gateway runs it: body limit, JSON logs with request ids, JSON bodies only. */
export function gatewayAdapter(config: BalesConfig, logger: PinoLogger): FastifyAdapter {
  // On close every connection still open is dropped, not awaited: on a signal, shutdown.ts has already closed the
  // listener and let each connection finish its answer; an in-process app.close() (the tests) does not wait on clients.
  const adapter = new FastifyAdapter({ bodyLimit: config.MAX_BODY_BYTES, forceCloseConnections: true, ...fastifyLogging(logger) });
  // Only JSON bodies are accepted; anything else is 415 rather than a string the DTO cannot describe.
  adapter.getInstance().removeContentTypeParser('text/plain');
  return adapter;
}

/**
 * What every route goes through: JSON body parsing, error mapping and body validation. The JSON parser is the only
 * one besides binary tensor data on the V2 infer routes: Nest then registers none of its own, so a form-encoded
 * body is refused (415) like any other non-JSON one.
 */
export function useGatewayPipeline(app: NestFastifyApplication, metrics: BalesMetrics, config: BalesConfig): void {
  app.useBodyParser('application/json', {}, parseJsonBody);
  useBinaryTensorBodies(app);
  app.useGlobalFilters(new ErrorFilter(metrics, config.MAX_BODY_BYTES));
  app.useGlobalPipes(new BodyValidationPipe());
}

/**
 * While the replica drains, every answer says `Connection: close`, so the client opens its next request elsewhere
 * instead of reusing a socket that is about to close. Decided as the answer goes out, not as the request came in:
 * the 200s of requests accepted before the drain say it too. Node closes each such socket once its answer is written.
 */
export function closeConnectionsWhileDraining(app: NestFastifyApplication, pending: PendingRequests): void {
  app.getHttpAdapter().getInstance().addHook('onSend', (_request, reply, payload, done) => {
    if (!pending.accepting) reply.header('connection', 'close');
    done(null, payload);
  });
}

/** Builds the gateway (validated config, Fastify, validation, error mapping), initialised but not listening. */
export async function createGatewayApp(env: Record<string, string | undefined>): Promise<{ app: NestFastifyApplication; config: BalesConfig }> {
  const config = loadConfig(env);
  const logger = createLogger(config.LOG_LEVEL);
  const adapter = gatewayAdapter(config, logger);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, logger), adapter, {
    // Nest's own lines wait for the pino logger, so boot lines are JSON like the rest.
    bufferLogs: true,
    // Boot failures reach the caller (main prints one line) instead of exiting the process from inside Nest.
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  useGatewayPipeline(app, app.get(BalesMetrics), config);
  closeConnectionsWhileDraining(app, app.get(PendingRequests));
  growHeapForLargeBodies(app.getHttpAdapter().getInstance());
  const openApi = new DocumentBuilder().setTitle('BALES').setDescription('Batched, prioritized ONNX inference behind one HTTP endpoint.').setVersion(BUILD_VERSION).addBearerAuth().build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, openApi), { jsonDocumentUrl: 'docs-json' });
  // Signals are handled by main.ts (exitGracefullyOnSignals), which bounds the shutdown; app.close() runs the hooks.
  await app.init();
  return { app, config };
}
