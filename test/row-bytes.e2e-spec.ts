import IORedis from 'ioredis';
import { attachRowBytes, decodeJob, encodeJob, writeRowBytes } from '@bales/queue';
import type { EncodedRow } from '@bales/model-registry';
import { TestRedis } from './support/redis-server';

/** A job's row bytes as the producer stores them apart and the consumer reads them back, through a real Redis. */
describe('row bytes in Redis', () => {
  let redis: TestRedis;
  let client: IORedis;

  beforeAll(async () => {
    redis = await TestRedis.start();
    client = new IORedis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('stores the rows of a job back to back under one key with its expiry, and every row reads back as it was', async () => {
    const now = Date.now();
    const image = (seed: number): EncodedRow => ({ buffers: [Buffer.from(Float32Array.from({ length: 27_648 }, (_, i) => seed + i).buffer)], dims: [[3, 48, 192]] });
    const rows = [image(1), image(2), image(3)].map((row, i) => ({ requestId: `r${i}`, enqueuedAt: now, deadline: now + 4000, row }));
    const encoded = encodeJob('image_v1', '1', 'replica-a', rows, () => 'test:rows:1', now);
    expect(encoded.bytes?.parts).toHaveLength(3);
    await Promise.all(writeRowBytes(client, encoded.bytes!));
    const stored = await client.getBuffer('test:rows:1');
    const ttl = await client.pttl('test:rows:1');
    expect(ttl).toBeGreaterThan(4000);
    expect(ttl).toBeLessThanOrEqual(encoded.bytes!.ttlMs);
    const decoded = decodeJob(JSON.parse(JSON.stringify(encoded.data)), 2);
    expect(attachRowBytes(decoded, stored)).toBeUndefined();
    expect(decoded.rows.map((r) => r.row.buffers[0].equals(rows[r.requestId === 'r0' ? 0 : r.requestId === 'r1' ? 1 : 2].row.buffers[0]))).toEqual([true, true, true]);
  });

  it('stores row bytes sent before the connection is up, and beside other commands on the same connection', async () => {
    const rows = (seed: number) => ({ key: `test:rows:${seed}`, parts: [Buffer.alloc(70_000, seed), Buffer.alloc(40_000, seed + 1)], ttlMs: 5000 });
    // Sent while ioredis is still connecting: held in its offline queue, written once it is up.
    const fresh = new IORedis(redis.url);
    try {
      const early = writeRowBytes(fresh, rows(10));
      const others = Array.from({ length: 50 }, (_, i) => fresh.set(`test:other:${i}`, 'x'.repeat(i)));
      const more = Array.from({ length: 20 }, (_, i) => writeRowBytes(fresh, rows(20 + i))).flat();
      expect(await Promise.all([...early, ...more])).toEqual(expect.arrayContaining(['OK', 110_000]));
      await Promise.all(others);
      for (const seed of [10, ...Array.from({ length: 20 }, (_, i) => 20 + i)]) {
        expect((await client.getBuffer(`test:rows:${seed}`))!.equals(Buffer.concat(rows(seed).parts))).toBe(true);
      }
      expect(await client.get('test:other:49')).toBe('x'.repeat(49));
    } finally {
      fresh.disconnect();
    }
  });
});
