import { randomUUID } from 'node:crypto';
import { FastifyBaseLogger, FastifyReply, FastifyRequest, FastifyServerOptions, LogController } from 'fastify';
import pino, { Bindings, ChildLoggerOptions, Level, LevelWithSilent, Logger } from 'pino';
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
 * A request's logger: the process logger with the request's bindings (its request_id), made on the request's first
 * line. Fastify otherwise calls pino's child() for every request, which serialises the bindings at once, and most
 * requests never log a line (docs/benchmarks.md, Measurements behind design choices).
 */
class RequestLogger {
  private bound?: Logger;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private get logger(): Logger {
    return (this.bound ??= this.parent.child(this.childBindings, this.options));
  }

  get level(): string {
    return this.bound?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  isLevelEnabled(level: LevelWithSilent): boolean {
    return (this.bound ?? this.parent).isLevelEnabled(level);
  }

  bindings(): Bindings {
    return this.logger.bindings();
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.logger.child(bindings, options);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  silent(): void {}

  private write(level: Level, args: unknown[]): void {
    // Below the level, no line and so no child: pino's methods for disabled levels are no-ops.
    if (!this.bound && !this.parent.isLevelEnabled(level)) return;
    const logger = this.logger;
    (logger[level] as (...line: unknown[]) => void).apply(logger, args);
  }
}

/**
 * Fastify options that make every log line about a request carry its request_id, a UUID generated here (never
 * taken from a client header) and the same one the client gets back.
 */
export function fastifyLogging(logger: Logger): Pick<FastifyServerOptions, 'loggerInstance' | 'logController' | 'genReqId' | 'childLoggerFactory'> {
  return {
    loggerInstance: logger,
    // A route's own log level (none here) needs a real child at once; every other request gets one on its first line.
    childLoggerFactory: (parent, bindings, options) => (options.level ? parent.child(bindings, options) : (new RequestLogger(parent as Logger, bindings, options) as unknown as FastifyBaseLogger)),
    logController: new RequestLogController({ requestIdLogLabel: 'request_id' }),
    genReqId: () => randomUUID(),
  };
}
