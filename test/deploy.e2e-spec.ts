import { spawn } from 'node:child_process';
import IORedis from 'ioredis';
import { EXAMPLE_INPUT } from './support/example-input';
import { TestGateway, post, startGateway } from './support/gateway';
import { DEFAULTS, compose, configMap, container, containerPort, find, inRuntime, podConfig } from './support/deployment-files';
import { TestRedis, freePort } from './support/redis-server';

/** Runs a health check command the way Docker would, without blocking this process's gateway. Resolves its exit code. */
function run(command: string, args: string[], env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 20000 });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

describe('deployment files', () => {
  describe('every probe and health check, asked of the real gateway', () => {
    let redis: TestRedis;
    let gateway: TestGateway;
    let gatewayPort: string;

    beforeAll(async () => {
      redis = await TestRedis.start();
      gateway = await startGateway(redis.url);
      gatewayPort = new URL(gateway.url).port;
    });

    afterAll(async () => {
      await gateway?.close();
      await redis?.stop();
    });

    it('answers 200 on each Deployment probe path, on the port the pods serve', async () => {
      const probes = { startupProbe: '/health/live', livenessProbe: '/health/live', readinessProbe: '/health/ready' };
      for (const [probe, path] of Object.entries(probes)) {
        const { httpGet } = container[probe];
        expect(httpGet.path).toBe(path);
        expect((await fetch(gateway.url + httpGet.path)).status).toBe(200);
        expect(containerPort(httpGet.port)).toBe(podConfig.PORT);
      }
      // The same request on a route the app does not have is not 200, so the check above can fail.
      expect((await fetch(`${gateway.url}/health/nope`)).status).toBe(404);
      expect(containerPort(find('Service', 'bales').spec.ports[0].targetPort)).toBe(podConfig.PORT);
      expect(configMap.data.PORT).toBe(String(DEFAULTS.PORT));
    });

    it("the Dockerfile HEALTHCHECK asks /health/live: exit 0 from a live gateway, 1 when nothing listens, the config's port by default", async () => {
      const [healthcheck] = inRuntime('HEALTHCHECK');
      const command = /\bCMD\s+(.*)$/.exec(healthcheck.args)![1];
      expect(command).toContain('/health/live');
      expect(command).toContain(`process.env.PORT||${DEFAULTS.PORT}`);
      expect(inRuntime('EXPOSE').map((i) => i.args)).toEqual([String(DEFAULTS.PORT)]);
      // Docker runs a shell-form HEALTHCHECK with /bin/sh -c, in the container's environment.
      expect(await run('/bin/sh', ['-c', command], { PORT: gatewayPort })).toBe(0);
      expect(await run('/bin/sh', ['-c', command], { PORT: String(await freePort()) })).toBe(1);
    });

    it("the compose healthcheck asks /health/ready: exit 0 from a ready gateway, 1 when nothing listens, the config's port by default", async () => {
      const [form, cmd, ...args] = compose.services.bales.healthcheck.test as string[];
      expect(form).toBe('CMD');
      expect(args.join(' ')).toContain('/health/ready');
      expect(args.join(' ')).toContain(`process.env.PORT||${DEFAULTS.PORT}`);
      expect(compose.services.bales.ports).toEqual([`${DEFAULTS.PORT}:${DEFAULTS.PORT}`]);
      expect(await run(cmd, args, { PORT: gatewayPort })).toBe(0);
      expect(await run(cmd, args, { PORT: String(await freePort()) })).toBe(1);
    });

    it('while Redis is down the image stays healthy (nothing restarts it) and compose reports it not ready', async () => {
      const dockerCheck = /\bCMD\s+(.*)$/.exec(inRuntime('HEALTHCHECK')[0].args)![1];
      const [, cmd, ...args] = compose.services.bales.healthcheck.test as string[];
      await redis.stop();
      try {
        let ready = 200;
        for (let i = 0; i < 50 && ready === 200; i++) {
          await new Promise((r) => setTimeout(r, 100));
          ready = (await fetch(`${gateway.url}/health/ready`)).status;
        }
        expect(ready).toBe(503);
        expect(await run('/bin/sh', ['-c', dockerCheck], { PORT: gatewayPort })).toBe(0);
        expect(await run(cmd, args, { PORT: gatewayPort })).toBe(1);
      } finally {
        await redis.resume();
        // Back to ready before teardown, so closing the gateway does not race its reconnection.
        for (let i = 0; i < 100 && (await fetch(`${gateway.url}/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      }
    });
  });

  describe('QUEUE_PREFIX, for deployments sharing one Redis or a Redis Cluster', () => {
    let redis: TestRedis;
    const gateways: TestGateway[] = [];

    beforeAll(async () => {
      redis = await TestRedis.start();
    });

    afterAll(async () => {
      for (const gw of gateways) await gw.close();
      await redis?.stop();
    });

    it('keeps two deployments on one Redis apart, every key of each under its own {hash tag}', async () => {
      const start = async (env: Record<string, string>) => {
        const gw = await startGateway(redis.url, { THREAD_POOL_SIZE: '1', BATCHER_TIMEOUT_S: '1', ...env });
        gateways.push(gw);
        return gw;
      };
      const a = await start({ QUEUE_PREFIX: '{bales-a}' });
      // Accept-only gateways: their requests are answered only if a processor of the same prefix runs them.
      const aFront = await start({ QUEUE_PREFIX: '{bales-a}', PROCESSOR_ENABLED: 'false' });
      const bFront = await start({ QUEUE_PREFIX: '{bales-b}', PROCESSOR_ENABLED: 'false' });
      const request = { model_id: 'stub_v1', payload: { input: EXAMPLE_INPUT } };

      expect((await post(`${a.url}/infer`, request)).status).toBe(200);
      expect((await post(`${aFront.url}/infer`, request)).status).toBe(200);
      // Same Redis, other prefix: deployment a's processor never takes b's work.
      expect((await post(`${bFront.url}/infer`, request)).status).toBe(504);

      const client = new IORedis(redis.url);
      try {
        const keys = await client.keys('*');
        expect(keys.some((k) => k.startsWith('{bales-a}:'))).toBe(true);
        expect(keys.some((k) => k.startsWith('{bales-b}:'))).toBe(true);
        // Redis Cluster hashes only the part in braces, so each deployment's keys share one slot.
        expect(keys.filter((k) => !/^\{bales-[ab]\}:/.test(k))).toEqual([]);
      } finally {
        client.disconnect();
      }
    });
  });
});
