import { Logger } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { loadConfig } from '@bales/config';
import { epochNow } from './clock';
import { InferOutcome, PendingRequests, ResultMessage } from './pending-requests';
import type { RedisConnections } from './redis-connections';
import { ResultRouter } from './result-router';

const HERE = 'replica-a';
const PREFIX = 'bales-test';
const RESULTS = `${PREFIX}:results:${HERE}`;
const CANCELLED = `${PREFIX}:cancelled`;

const result = (id: string): ResultMessage => ({ id, ok: true, model_id: 'm', model_version: '1', result: { values: [1] }, batch_size: 1, queued_ms: 0 });

/** The publisher and subscriber connections the router opens, recording what it sends. */
class FakeConnections {
  readonly instanceId = HERE;
  readonly published: [string, unknown][] = [];
  readonly subscriber = Object.assign(new EventEmitter(), { subscribe: jest.fn(async () => 2) });
  readonly logError = jest.fn();
  publishFails = false;

  open(name: string) {
    if (name !== 'publisher') return this.subscriber;
    return {
      publish: async (channel: string, message: string) => {
        if (this.publishFails) throw new Error('Connection is closed.');
        this.published.push([channel, JSON.parse(message)]);
        return 1;
      },
    };
  }
}

async function startRouter() {
  const connections = new FakeConnections();
  const pending = new PendingRequests();
  const router = new ResultRouter(loadConfig({ QUEUE_PREFIX: PREFIX }), connections as unknown as RedisConnections, pending);
  await router.onModuleInit();
  /** Redis delivering a message on one of the router's channels. */
  const arrive = (channel: string, message: unknown) => connections.subscriber.emit('message', channel, typeof message === 'string' ? message : JSON.stringify(message));
  return { connections, pending, router, arrive };
}

const nextTick = () => new Promise((r) => setImmediate(r));
const waiting = (pending: PendingRequests, id: string): Promise<InferOutcome> => pending.add(id, 5000);

describe('ResultRouter', () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it('settles a result for this replica\'s own client directly, publishing nothing', async () => {
    const { router, pending, connections } = await startRouter();
    const answered = waiting(pending, 'a');
    router.deliver([{ origin: HERE, message: result('a') }]);
    expect(await answered).toEqual(result('a'));
    expect(connections.published).toEqual([]);
  });

  it('publishes other replicas\' results on each origin\'s own channel, one message per origin per batch', async () => {
    const { router, connections } = await startRouter();
    router.deliver([
      { origin: 'replica-b', message: result('b1') },
      { origin: 'replica-c', message: result('c1') },
      { origin: 'replica-b', message: result('b2') },
    ]);
    await nextTick();
    expect(connections.published).toEqual([
      [`${PREFIX}:results:replica-b`, [result('b1'), result('b2')]],
      [`${PREFIX}:results:replica-c`, [result('c1')]],
    ]);
  });

  it('logs a result it could not publish instead of throwing', async () => {
    const { router, connections } = await startRouter();
    connections.publishFails = true;
    router.deliver([{ origin: 'replica-b', message: result('b1') }]);
    await nextTick();
    expect(connections.logError).toHaveBeenCalledWith(expect.objectContaining({ message: 'Connection is closed.' }));
  });

  it('settles the results arriving on its channel, dropping anything malformed', async () => {
    const { pending, arrive } = await startRouter();
    const answered = waiting(pending, 'a');
    const other = waiting(pending, 'b');
    arrive(RESULTS, 'not json');
    arrive(RESULTS, { id: 'b', ok: true });
    arrive(RESULTS, [{ id: 'b' }, null, 7, { id: 'a', ok: true, model_id: 'm', model_version: '1', result: { values: [1] }, batch_size: 1, queued_ms: 0 }]);
    expect(await answered).toEqual(result('a'));
    expect(pending.has('b')).toBe(true);
    pending.settle(result('b'));
    await other;
  });

  it('subscribes to its own results and to cancellations, and again each time its connection is ready', async () => {
    const { connections } = await startRouter();
    expect(connections.subscriber.subscribe).toHaveBeenCalledWith(RESULTS, CANCELLED);
    connections.subscriber.emit('ready');
    expect(connections.subscriber.subscribe).toHaveBeenCalledTimes(2);
  });

  it('announces the cancellations of one tick in one PUBLISH, with their deadlines', async () => {
    const { router, connections } = await startRouter();
    router.cancel('a', 1000);
    router.cancel('b', 2000);
    expect(connections.published).toEqual([]);
    await nextTick();
    expect(connections.published).toEqual([
      [
        CANCELLED,
        [
          ['a', 1000],
          ['b', 2000],
        ],
      ],
    ]);
  });

  it('treats a request another replica cancelled as cancelled until its deadline, then forgets it', async () => {
    const { router, arrive } = await startRouter();
    arrive(CANCELLED, [
      ['soon', epochNow() + 30],
      ['later', epochNow() + 60_000],
      ['past', epochNow() - 1],
      ['bad'],
    ]);
    expect([router.isCancelled('soon'), router.isCancelled('later'), router.isCancelled('past'), router.isCancelled('bad')]).toEqual([true, true, false, false]);
    await new Promise((r) => setTimeout(r, 40));
    arrive(CANCELLED, [['next', epochNow() + 60_000]]);
    expect([router.isCancelled('soon'), router.isCancelled('later'), router.isCancelled('next')]).toEqual([false, true, true]);
  });
});
