import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ownGateway, spawnGateway } from './support/gateway';
import { TestRedis } from './support/redis-server';

const REMOTE = '10.20.30.40';

/** The three mutating Models API calls, each bound to fail after the guard, so passing it shows as `passed`. */
const MUTATING = [
  { method: 'POST' as const, url: '/models', payload: { model_id: 'stub_v1', weights_path: './models/stub_v2.onnx', task: 'classification' }, passed: 409 },
  { method: 'POST' as const, url: '/models/made_up/reload', payload: { weights_path: './models/stub_v2.onnx' }, passed: 404 },
  { method: 'DELETE' as const, url: '/models/made_up', passed: 404 },
];

function call(app: NestFastifyApplication, remoteAddress: string, request: (typeof MUTATING)[number], headers: Record<string, string> = {}) {
  const { method, url, payload } = request;
  return app.inject({ method, url, payload, remoteAddress, headers }).then((res) => ({ status: res.statusCode, body: res.json() }));
}

describe('Models API access with ADMIN_TOKEN unset (the default)', () => {
  const own = ownGateway();

  it.each(MUTATING)('answers $method $url from another host with 403 naming ADMIN_TOKEN', async (request) => {
    const res = await call(own.gw.app, REMOTE, request);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', message: expect.stringContaining('ADMIN_TOKEN') });
  });

  it.each(['127.0.0.1', '127.8.0.2', '::1', '::ffff:127.0.0.1'])('lets a loopback client (%s) through to the call itself', async (address) => {
    for (const request of MUTATING) expect((await call(own.gw.app, address, request)).status).toBe(request.passed);
  });

  it('still lets anyone read the model list', async () => {
    const res = await own.gw.app.inject({ method: 'GET', url: '/models', remoteAddress: REMOTE });
    expect(res.statusCode).toBe(200);
  });

  it('does not take a forwarded-for header as the client address', async () => {
    const res = await call(own.gw.app, REMOTE, MUTATING[2], { 'x-forwarded-for': '127.0.0.1' });
    expect(res.status).toBe(403);
  });

  it('hot-swaps over real HTTP from the same host, as the quick start does', async () => {
    const res = await fetch(`${own.gw.url}/models/stub_v1/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weights_path: './models/stub_v2.onnx' }) });
    expect(res.status).toBe(200);
  });
});

describe('Models API access with ADMIN_TOKEN set', () => {
  const own = ownGateway({ ADMIN_TOKEN: 'fleet-secret' });

  it.each(MUTATING)('lets any host that presents the token make $method $url', async (request) => {
    expect((await call(own.gw.app, REMOTE, request, { authorization: 'Bearer fleet-secret' })).status).toBe(request.passed);
  });

  it.each(MUTATING)('answers $method $url without the token with 401, from loopback too', async (request) => {
    for (const address of [REMOTE, '127.0.0.1']) expect((await call(own.gw.app, address, request)).status).toBe(401);
  });
});

describe('the boot log', () => {
  let redis: TestRedis;
  beforeAll(async () => (redis = await TestRedis.start()));
  afterAll(() => redis?.stop());

  it('warns once that the management API is loopback-only while ADMIN_TOKEN is unset, and not when it is set', async () => {
    const warning = /ADMIN_TOKEN is not set/g;
    const open = await spawnGateway(redis.url);
    await open.stop();
    expect(open.output().match(warning)).toHaveLength(1);
    const closed = await spawnGateway(redis.url, { ADMIN_TOKEN: 'fleet-secret' });
    await closed.stop();
    expect(closed.output()).not.toMatch(warning);
  });
});
