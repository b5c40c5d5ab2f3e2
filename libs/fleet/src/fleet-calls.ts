import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BalesError, ErrorCode } from '@bales/errors';
import type { FleetStore } from './fleet-store';
import type { FleetMessage, FleetReply, FleetRequest } from './fleet-types';

/** How often a call in progress looks for replicas whose heartbeat lapsed. */
const LIVENESS_POLL_MS = 250;

/** Each replica that answered, by replica id. */
export type Replies = Map<string, FleetReply & { ok: true }>;

/** A call that one or more replicas refused: their answers, and the ones that agreed (to undo). */
export class RefusedCall extends Error {
  constructor(
    readonly refusals: (FleetReply & { ok: false })[],
    readonly agreed: string[],
  ) {
    super(refusals.map((r) => `replica ${r.replica}: ${r.message}`).join('; '));
  }
}

/**
 * Messages between replicas over Redis pub/sub: a call goes to every replica on one channel, and each answers on
 * the caller's own reply channel. A call waits for the replicas that were live when it began, and stops waiting
 * for one whose heartbeat lapses (killed, or cut off), so it never hangs on a dead replica.
 */
export class FleetCalls {
  private readonly waiting = new Map<string, (reply: FleetReply) => void>();
  private calls = 0;

  constructor(
    private readonly store: FleetStore,
    private readonly self: string,
    private readonly publisher: () => Redis | undefined,
    subscriber: Redis,
    handle: (message: FleetMessage) => Promise<FleetReply>,
  ) {
    // Subscribed on every (re)connection, not by ioredis's autoResubscribe (off on this connection): that drops its
    // SUBSCRIBE's promise, which a shutdown during the reconnection rejects unhandled ("Connection is closed.").
    // A failure here is only logged by the connection.
    subscriber.on('ready', () => void subscriber.subscribe(store.channel, store.replyChannel(self)).catch(() => undefined));
    subscriber.on('message', (channel: string, text: string) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      if (channel === store.channel) {
        const message = parsed as FleetMessage;
        // A reply that cannot be sent (Redis away) is lost; the caller stops waiting at its deadline.
        void handle(message)
          .then((reply) => this.send(this.store.replyChannel(message.from), reply))
          .catch(() => undefined);
      } else {
        const reply = parsed as FleetReply;
        this.waiting.get(reply.call)?.(reply);
      }
    });
  }

  /**
   * Sends `request` to every replica in `replicas` and resolves with their answers once each has answered or is no
   * longer live. Rejects with RefusedCall when any refused, and with a 504 naming the silent ones after timeoutMs.
   */
  async call(request: FleetRequest, replicas: string[], timeoutMs: number): Promise<Replies> {
    const call = `${this.self}:${this.calls++}:${randomBytes(3).toString('hex')}`;
    const pending = new Set(replicas);
    const replies: Replies = new Map();
    const refusals: (FleetReply & { ok: false })[] = [];
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const settle = () => pending.size === 0 && finish();
    this.waiting.set(call, (reply) => {
      if (!pending.delete(reply.replica)) return;
      if (reply.ok) replies.set(reply.replica, reply);
      else refusals.push(reply);
      settle();
    });
    const deadline = Date.now() + timeoutMs;
    const watch = setInterval(() => {
      void this.store.replicas().then(
        (live) => {
          const alive = new Set(live.map((b) => b.replica_id));
          for (const id of [...pending]) if (id !== this.self && !alive.has(id)) pending.delete(id);
          settle();
        },
        () => undefined,
      );
      if (Date.now() > deadline) finish();
    }, LIVENESS_POLL_MS);
    try {
      await this.send(this.store.channel, { ...request, call, from: this.self });
      await done;
    } finally {
      clearInterval(watch);
      this.waiting.delete(call);
    }
    if (refusals.length > 0) throw new RefusedCall(refusals, [...replies.keys()]);
    if (pending.size > 0) {
      const silent = [...pending].join(', ');
      throw new BalesError(ErrorCode.FLEET_TIMEOUT, `replica ${silent} did not answer '${request.kind}' for model '${request.model}' within ${timeoutMs / 1000} s`, { replica_id: silent });
    }
    return replies;
  }

  /** Sends a message no one answers (undoing a refused call): best effort. */
  tell(request: FleetRequest): void {
    void this.send(this.store.channel, { ...request, call: `${this.self}:tell:${this.calls++}`, from: this.self }).catch(() => undefined);
  }

  private async send(channel: string, message: FleetMessage | FleetReply): Promise<void> {
    const client = this.publisher();
    if (client?.status !== 'ready') throw new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the queue (Redis) is unreachable; retry shortly');
    await client.publish(channel, JSON.stringify(message));
  }
}
