import { createServer } from 'node:net';
import { TestRedis, ephemeralLow, freePort } from './support/redis-server';

/** The throwaway Redis every suite uses, the restarts the outage tests depend on, and the ports servers start on. */
describe('TestRedis', () => {
  it('gives ports below the ephemeral range, which no outgoing connection takes while a server boots on one', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of ports) expect(port).toBeLessThan(ephemeralLow());
  });

  it('listens below the ephemeral range, so no outgoing connection can hold its port while it is down', async () => {
    const low = ephemeralLow();
    const redis = await TestRedis.start();
    try {
      expect(redis.port).toBeLessThan(low);
      await redis.stop();
      await redis.resume();
    } finally {
      await redis.stop();
    }
  });

  it('fails a restart at once, naming the reason, when its port was taken while it was down', async () => {
    const redis = await TestRedis.start();
    await redis.stop();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(redis.port, '127.0.0.1', resolve));
    try {
      const started = performance.now();
      await expect(redis.resume()).rejects.toThrow(/exited on port \d+: .*failed listening/i);
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      squatter.close();
      await redis.stop();
    }
  });
});
