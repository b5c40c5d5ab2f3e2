import { randomUUID } from 'node:crypto';
import { FastifyBaseLogger, FastifyReply, FastifyRequest, FastifyServerOptions, LogController } from 'fastify';
import pino, { Logger } from 'pino';
import type { LogLevel } from '@bales/config';

/** The process's one logger: JSON lines on stdout, level names instead of numbers, ISO timestamps. */
export function createLogger(level: LogLevel): Logger {
  return pino({ level, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } });
}

/**
 * Fastify's own per-request lines (incoming, completed, 4xx, route not found) at debug instead of info: at
 * thousands of requests a second they are noise unless asked for. Server errors stay at error.
 */
class RequestLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ err: error, method: request.method, url: request.url, status: reply.statusCode }, 'request errored');
    else if (isDebug(reply.log)) reply.log.debug({ method: request.method, url: request.url, status: reply.statusCode, response_time_ms: reply.elapsedTime }, 'request completed');
  }

  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (reply.statusCode >= 500) reply.log.error({ err: error, method: request.method, url: request.url, status: reply.statusCode }, error.message);
    else reply.log.debug({ status: reply.statusCode }, error.message);
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.debug(`route ${request.method} ${request.url} not found`);
  }
}

const isDebug = (log: FastifyBaseLogger) => (log as Logger).isLevelEnabled('debug');

/**
 * Fastify options that make every log line about a request carry its request_id, a UUID generated here (never
 * taken from a client header) and the same one the client gets back.
 */
export function fastifyLogging(logger: Logger): Pick<FastifyServerOptions, 'loggerInstance' | 'logController' | 'genReqId'> {
  return {
    loggerInstance: logger,
    logController: new RequestLogController({ requestIdLogLabel: 'request_id' }),
    genReqId: () => randomUUID(),
  };
}
