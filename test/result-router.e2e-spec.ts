import IORedis from 'ioredis';
import { Server, Socket, createConnection, createServer } from 'node:net';
import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { PendingRequests } from '@bales/queue';
import { RedisConnections } from '../libs/queue/src/redis-connections';
import { ResultRouter } from '../libs/queue/src/result-router';
import { sleep, waitFor } from './support/gateway';
import { TestRedis } from './support/redis-server';

/**
 * A TCP relay to Redis. Once `holdAfterInfo` is set, each new connection's replies are held back from the moment
 * the client sends INFO (ioredis's ready check), and handed over only when the client closes its side.
 */
class Relay {
  holdAfterInfo = false;
  /** Replies held back, per connection. */
  readonly held = new Set<Buffer[]>();
  private readonly clients = new Set<Socket>();
  private readonly server: Server;

  private constructor(target: number) {
    this.server = createServer((client) => {
      const upstream = createConnection({ port: target, host: '127.0.0.1' });
      const hold = this.holdAfterInfo;
      let holding = false;
      const held: Buffer[] = [];
      this.held.add(held);
      this.clients.add(client);
      client.on('data', (d) => {
        if (hold && d.includes('info')) holding = true;
        upstream.write(d);
      });
      upstream.on('data', (d) => (holding ? held.push(d) : client.write(d)));
      client.on('end', () => {
        for (const d of held.splice(0)) client.write(d);
        client.end();
        upstream.end();
      });
      client.on('close', () => {
        this.clients.delete(client);
        upstream.destroy();
      });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
  }

  static async start(target: number): Promise<Relay> {
    const relay = new Relay(target);
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as { port: number }).port}/0`;
  }

  /** Drops every client connection, as a network blip would. */
  cut(): void {
    for (const c of this.clients) c.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('ResultRouter (real Redis)', () => {
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(() => redis?.stop());

  function startRouter(url: string) {
    const config = loadConfig({ REDIS_URL: url });
    const connections = new RedisConnections(config);
    const pending = new PendingRequests();
    return { connections, pending, router: new ResultRouter(config, connections, pending) };
  }

  it("brings an error's details from the replica that ran the row to the one holding the client", async () => {
    const a = startRouter(redis.url);
    const b = startRouter(redis.url);
    try {
      await Promise.all([a.router.onModuleInit(), b.router.onModuleInit()]);
      const answer = a.pending.add('r1', 5000).catch((err: BalesError) => err);
      const details = { model_id: 'stub_v1', state: 'failed', reason: 'cannot load stub_v1/model.onnx' };
      b.router.deliver([{ origin: a.router.instanceId, message: { id: 'r1', ok: false, code: ErrorCode.MODEL_UNAVAILABLE, message: 'failed there', details } }]);
      const err = (await answer) as BalesError;
      expect([err.code, err.message, err.details]).toEqual([ErrorCode.MODEL_UNAVAILABLE, 'failed there', details]);
    } finally {
      await Promise.all([a.connections.onApplicationShutdown(), b.connections.onApplicationShutdown()]);
    }
  });

  it('subscribes again after its connection drops, so results from other replicas still arrive', async () => {
    const relay = await Relay.start(redis.port);
    const { connections, router } = startRouter(relay.url);
    const other = new IORedis(redis.url);
    try {
      await router.onModuleInit();
      const channel = `${loadConfig({}).QUEUE_PREFIX}:results:${router.instanceId}`;
      const subscribers = async () => ((await other.pubsub('NUMSUB', channel)) as [string, number])[1];
      expect(await subscribers()).toBe(1);
      relay.cut();
      // The subscription ends with its connection, then the subscriber subscribes again on the next one.
      await waitFor(async () => (await subscribers()) === 0);
      await waitFor(async () => (await subscribers()) === 1, 2000);
    } finally {
      other.disconnect();
      await connections.onApplicationShutdown();
      await relay.close();
    }
  });

  it('leaves no unhandled rejection when shut down while reconnecting, past the ready check', async () => {
    const relay = await Relay.start(redis.port);
    const { connections, router } = startRouter(relay.url);
    const logged = jest.spyOn(connections, 'logError').mockImplementation(() => undefined);
    try {
      await router.onModuleInit();
      relay.holdAfterInfo = true;
      relay.cut();
      // Publisher and subscriber reconnected, and Redis answered their ready checks; neither has read the answer.
      const answered = () => [...relay.held].filter((h) => h.some((d) => d.includes('redis_version'))).length;
      await waitFor(() => answered() === 2);
      // The subscriber is still connecting, so it is disconnected; it then reads the answer, turns ready and
      // subscribes again, on a connection that is closing.
      await connections.onApplicationShutdown();
      await sleep(200);
      // That SUBSCRIBE failed and the failure was logged. Unhandled, it would fail this test (and kill a gateway).
      expect(logged).toHaveBeenCalledWith(expect.objectContaining({ message: 'Connection is closed.' }));
    } finally {
      await relay.close();
    }
  });
});
