import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { fastifyLogging } from './logging';

/** A pino logger at `level` writing its lines into `lines`, parsed. */
function capture(level: string): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

const requestLogger = (logger: pino.Logger, id: string, options = {}): FastifyBaseLogger =>
  fastifyLogging(logger).childLoggerFactory!.call(null as never, logger, { request_id: id }, options, null as never) as FastifyBaseLogger;

describe('per-request logger', () => {
  it('builds no pino child for a request that logs nothing, not even when asked whether a level is on', () => {
    const { logger } = capture('info');
    const child = jest.spyOn(logger, 'child');
    const log = requestLogger(logger, 'a');
    expect((log as unknown as pino.Logger).isLevelEnabled('debug')).toBe(false);
    log.debug('below the level');
    expect(log.level).toBe('info');
    expect(child).not.toHaveBeenCalled();
  });

  it('writes each line with the request_id, building the child once', async () => {
    const { logger, lines } = capture('info');
    const child = jest.spyOn(logger, 'child');
    const log = requestLogger(logger, 'req-1');
    log.warn({ status: 503 }, 'first');
    log.error(new Error('second'));
    log.info('third');
    await new Promise((r) => setImmediate(r));
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines).toMatchObject([
      { request_id: 'req-1', level: 40, status: 503, msg: 'first' },
      { request_id: 'req-1', level: 50, msg: 'second', err: { message: 'second' } },
      { request_id: 'req-1', level: 30, msg: 'third' },
    ]);
  });

  it('a route with its own log level gets a child with that level at once', () => {
    const { logger } = capture('info');
    const log = requestLogger(logger, 'b', { level: 'debug' });
    expect(log.level).toBe('debug');
    expect((log as unknown as pino.Logger).isLevelEnabled('debug')).toBe(true);
  });
});
