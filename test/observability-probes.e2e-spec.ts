import { ModelRegistry } from '@bales/model-registry';
import { PendingRequests } from '@bales/queue';
import { version } from '../package.json';
import { getJson, ownGateway } from './support/gateway';

describe('Kubernetes probes: GET /health/live and GET /health/ready', () => {
  const own = ownGateway();

  it('reports ready with every check up once Redis answers and the models are loaded', async () => {
    const res = await getJson(`${own.gw.url}/health/ready`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      details: { redis: { status: 'up' }, models: { status: 'up', loaded: expect.any(Number), worker_threads: 2 }, accepting: { status: 'up' } },
    });
    expect(res.body.details.models.loaded).toBeGreaterThanOrEqual(1);
  });

  it('GET /health gives the original details: models with versions, queue depths, pending requests, Redis, worker pool, uptime and version', async () => {
    const res = await getJson(`${own.gw.url}/health`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ok',
      version: version,
      redis: 'up',
      models: expect.arrayContaining([{ id: 'stub_v1', version: '1', task: 'classification', state: 'ready' }]),
      queue_depths: expect.any(Object),
      pending_requests: 0,
      workers: { threads: 2, state: 'up' },
      processor: { enabled: true, batches: expect.any(Number), rows_run: expect.any(Number), rows_expired: expect.any(Number) },
      uptime_s: expect.any(Number),
      replica_id: expect.any(String),
      replicas: [{ replica_id: res.body.replica_id, ready: true, draining: false, started_at: expect.any(String), busy: expect.any(Number), models: [{ id: 'stub_v1', version: '1', state: 'ready' }] }],
    });
  });

  it('reports live with the event loop lag, and is never cached', async () => {
    const res = await fetch(`${own.gw.url}/health/live`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('no-store');
    expect(await res.json()).toMatchObject({ status: 'ok', details: { event_loop: { status: 'up', lag_ms: expect.any(Number) } } });
  });
});

describe('readiness during shutdown and once the models are released', () => {
  const own = ownGateway();

  it('answers 503 naming the shutdown once the producer stops accepting, while liveness stays 200', async () => {
    own.gw.app.get(PendingRequests).beginShutdown();
    const ready = await getJson(`${own.gw.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.error).toEqual({ accepting: { status: 'down', message: 'the gateway is shutting down' } });
    expect(ready.body.message).toBe('not ready: accepting: the gateway is shutting down');
    expect((await getJson(`${own.gw.url}/health/live`)).status).toBe(200);
  });

  it('answers 503 naming the models once the registry has released its worker pool', async () => {
    await own.gw.app.get(ModelRegistry).onApplicationShutdown();
    const ready = await getJson(`${own.gw.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.error.models).toMatchObject({ status: 'down', message: expect.stringContaining('not loaded') });
    expect(ready.body.message).toContain('models: ');
  });
});
