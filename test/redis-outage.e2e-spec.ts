import { EXAMPLE_INPUT } from './support/example-input';
import { getJson, ownGateway, post, startGateway, statuses, waitFor } from './support/gateway';
import { TestRedis } from './support/redis-server';

const body = (extra: Record<string, unknown> = {}) => ({ model_id: 'stub_v1', priority: 2, payload: { input: EXAMPLE_INPUT }, ...extra });

describe('Redis outage (in-process gateways, a real Redis killed and restarted)', () => {
  describe('POST /infer', () => {
    it('answers 503 within about a second, reports not ready naming Redis, holds nothing, and serves again when Redis returns', async () => {
      const outage = await TestRedis.start();
      const gw = await startGateway(outage.url);
      try {
        expect((await post(`${gw.url}/infer`, body())).status).toBe(200);
        await outage.stop();
        const during = await Promise.all(Array.from({ length: 200 }, () => post(`${gw.url}/infer`, body())));
        expect(statuses(during)).toEqual({ 503: 200 });
        for (const a of during) expect(a.ms).toBeLessThan(1500);
        const ready = await getJson(`${gw.url}/health/ready`);
        expect(ready.status).toBe(503);
        expect(ready.body.error.redis).toMatchObject({ status: 'down' });
        expect((await getJson(`${gw.url}/health`)).body.pending_requests).toBe(0);

        await outage.resume();
        const back = performance.now();
        await waitFor(async () => (await post(`${gw.url}/infer`, body())).status === 200, 10000);
        const recoveredMs = performance.now() - back;
        console.log(`Redis outage: serving again ${recoveredMs.toFixed(0)} ms after redis-server answered`);
        expect(recoveredMs).toBeLessThan(5000);
        await waitFor(async () => (await getJson(`${gw.url}/health/ready`)).status === 200, 5000);
      } finally {
        await gw.close();
        await outage.stop();
      }
    });

    it('names Redis in the 503 a lone request gets once the outage has begun, and serves again when it returns', async () => {
      const outage = await TestRedis.start();
      const gw = await startGateway(outage.url);
      try {
        expect((await post(`${gw.url}/infer`, body({ model_type: 'classification' }))).status).toBe(200);
        await outage.stop();
        await new Promise((r) => setTimeout(r, 200));
        const res = await post(`${gw.url}/infer`, body({ model_type: 'classification' }));
        expect(res.status).toBe(503);
        expect(res.body.message).toMatch(/Redis/);
        expect(res.ms).toBeLessThan(1200);
        await outage.resume();
        const deadline = Date.now() + 15_000;
        let status = 0;
        while (status !== 200 && Date.now() < deadline) {
          status = (await post(`${gw.url}/infer`, body({ model_type: 'classification' }))).status;
          if (status !== 200) await new Promise((r) => setTimeout(r, 250));
        }
        expect(status).toBe(200);
      } finally {
        await gw.close();
        await outage.stop();
      }
    });
  });

  describe('GET /health/live and GET /health/ready', () => {
    const own = ownGateway();

    it('stays live but answers not ready with 503 naming Redis while Redis is down, and recovers', async () => {
      await own.redis.stop();
      try {
        await waitFor(async () => (await getJson(`${own.gw.url}/health/ready`)).status === 503);
        const ready = await getJson(`${own.gw.url}/health/ready`);
        expect(ready.body).toMatchObject({ status: 'error', error: { redis: { status: 'down', message: 'Redis is unreachable' } } });
        expect(ready.body.message).toBe('not ready: redis: Redis is unreachable');
        expect(ready.body.error.models).toBeUndefined();
        expect((await getJson(`${own.gw.url}/health/live`)).status).toBe(200);
      } finally {
        await own.redis.resume();
      }
      await waitFor(async () => (await getJson(`${own.gw.url}/health/ready`)).status === 200);
    });
  });
});
