import { INestApplication, Logger } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { PendingRequests } from '@bales/queue';

/**
 * SIGTERM/SIGINT: stop accepting at once (readiness false, new requests 503), answer every request already
 * accepted, then release workers, sessions and Redis connections through Nest's shutdown hooks, all within
 * SHUTDOWN_TIMEOUT_S, and exit 0 (1 when an accepted request was left unanswered). A second signal exits at once.
 * Nest's own enableShutdownHooks() is not used: its app.close() alone may wait forever on a Redis that is gone.
 */
export function exitGracefullyOnSignals(app: INestApplication, config: BalesConfig): void {
  const logger = new Logger('Shutdown');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    const pending = app.get(PendingRequests);
    pending.beginShutdown();
    const deadline = performance.now() + config.SHUTDOWN_TIMEOUT_S * 1000;
    logger.log(`${signal}: refusing new requests, answering ${pending.size} accepted ones (at most ${config.SHUTDOWN_TIMEOUT_S} s)`);
    void (async () => {
      const drained = await pending.drained(deadline - performance.now());
      const closed = await Promise.race([
        app.close().then(
          () => true,
          (err: Error) => {
            // BullMQ's close() rethrows when Redis is gone; the hooks that release workers have run by then.
            logger.warn(`a shutdown hook failed: ${err.message}`);
            return true;
          },
        ),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), Math.max(0, deadline - performance.now())).unref()),
      ]);
      if (!closed) logger.warn('shutdown hooks did not finish within SHUTDOWN_TIMEOUT_S; exiting anyway');
      if (!drained) logger.warn(`${pending.size} accepted requests were not answered within SHUTDOWN_TIMEOUT_S`);
      process.exit(drained ? 0 : 1);
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
