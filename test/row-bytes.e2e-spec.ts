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
});
