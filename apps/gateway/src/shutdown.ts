import { INestApplication, Logger } from '@nestjs/common';
import type { Server } from 'node:http';
import { Server as NetServer, Socket } from 'node:net';
import { setImmediate as afterPendingIo, setTimeout as sleep } from 'node:timers/promises';
import { BalesConfig } from '@bales/config';
import { PendingRequests } from '@bales/queue';

/**
 * Once the accepted requests are answered, the listener closes when no connection and no request has arrived for
 * QUIET_MS, and within LINGER_MAX_MS at most: a connection still in the kernel's accept queue when it closes is reset.
 */
const QUIET_MS = 100;
const LINGER_MAX_MS = 1000;

/**
 * SIGTERM/SIGINT: stop accepting at once (readiness false, new requests 503), answer every request already
 * accepted, close the HTTP connections without a reset, then release workers, sessions and Redis connections through
 * Nest's shutdown hooks, all within SHUTDOWN_TIMEOUT_S, and exit 0 (1 when an accepted request was left unanswered).
 * A second signal exits at once. Every answer sent during the drain says `Connection: close` (app.factory.ts).
 * Nest's own enableShutdownHooks() is not used: its app.close() alone may wait forever on a Redis that is gone.
 */
export function exitGracefullyOnSignals(app: INestApplication, config: BalesConfig): void {
  const logger = new Logger('Shutdown');
  const server = app.getHttpServer() as Server;
  // Every open socket, for the ones Node does not count idle although nothing came on them (see closeConnections).
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => sockets.add(socket.once('close', () => sockets.delete(socket))));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    const pending = app.get(PendingRequests);
    let lastArrivalAt = performance.now();
    const arrived = () => (lastArrivalAt = performance.now());
    server.on('connection', arrived).on('request', arrived);
    pending.beginShutdown();
    const deadline = performance.now() + config.SHUTDOWN_TIMEOUT_S * 1000;
    logger.log(`${signal}: refusing new requests, answering ${pending.size} accepted ones (at most ${config.SHUTDOWN_TIMEOUT_S} s)`);
    void (async () => {
      const drained = await pending.drained(deadline - performance.now());
      const connectionsClosed = await closeConnections(server, sockets, () => lastArrivalAt, deadline);
      if (!connectionsClosed) logger.warn('HTTP connections still open at SHUTDOWN_TIMEOUT_S are cut');
      const closed = await Promise.race([
        app.close().then(
          () => true,
          (err: Error) => {
            // BullMQ's close() rethrows when Redis is gone; the hooks that release workers have run by then.
            logger.warn(`a shutdown hook failed: ${err.message}`);
            return true;
          },
        ),
        sleep(Math.max(0, deadline - performance.now()), false, { ref: false }),
      ]);
      if (!closed) logger.warn('shutdown hooks did not finish within SHUTDOWN_TIMEOUT_S; exiting anyway');
      if (!drained) logger.warn(`${pending.size} accepted requests were not answered within SHUTDOWN_TIMEOUT_S`);
      process.exit(drained ? 0 : 1);
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Resolves once nothing has arrived for QUIET_MS, or at `until`. */
async function quiet(lastArrivalAt: () => number, until: number): Promise<void> {
  for (;;) {
    // Timers run before the event loop reads its sockets: what arrived meanwhile is seen only after this.
    await afterPendingIo();
    const wait = Math.min(QUIET_MS - (performance.now() - lastArrivalAt()), until - performance.now());
    if (wait <= 0) return;
    await sleep(wait);
  }
}

/**
 * Closes the listener and the connections without a reset, then resolves true once every socket has closed, or false
 * when the deadline passes first.
 * - New connections wait, unread, until the listener closes: a client that reconnects at once after each 503 then
 *   waits for its answer instead of queueing its next connection where the close would reset it.
 * - Once the listener is closed, every request that came is answered (`Connection: close`, after which Node closes
 *   its socket); only then are the sockets left without a request closed, with a FIN. Node counts a socket that has
 *   not sent its first request as busy (its headers timeout runs), so those that received nothing are closed here too.
 */
async function closeConnections(server: Server, sockets: Set<Socket>, lastArrivalAt: () => number, deadline: number): Promise<boolean> {
  const held: Socket[] = [];
  const hold = (socket: Socket) => held.push(socket);
  // net.Server's pauseOnConnect option, read at each accept: the socket reads nothing until resumed.
  Object.assign(server, { pauseOnConnect: true });
  server.on('connection', hold);
  await quiet(lastArrivalAt, Math.min(deadline, performance.now() + LINGER_MAX_MS));
  // net.Server's close, not http.Server's: that one closes the idle sockets at once, while a request may be on its way.
  const closed = new Promise<boolean>((resolve) => NetServer.prototype.close.call(server, () => resolve(true)));
  server.off('connection', hold);
  for (const socket of held) socket.resume();
  await quiet(lastArrivalAt, deadline);
  server.closeIdleConnections();
  for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
  return Promise.race([closed, sleep(Math.max(0, deadline - performance.now()), false, { ref: false })]);
}
