import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { QueueDepth } from '@bales/queue';
import { TestGateway, getJson, sleep, startGateway, waitFor } from './gateway';

/** The names of every model version's infer queue under the prefix. */
export async function inferQueues(redisUrl: string, prefix: string): Promise<string[]> {
  const client = new IORedis(redisUrl);
  try {
    const keys = await client.keys(`${prefix}:infer/*:meta`);
    return keys.map((k) => k.slice(prefix.length + 1, -':meta'.length));
  } finally {
    client.disconnect();
  }
}

/** Jobs of every model version's queue still in Redis, in any state, for the given prefix. */
export async function jobsInRedis(redisUrl: string, prefix: string): Promise<number> {
  let total = 0;
  for (const name of await inferQueues(redisUrl, prefix)) {
    const queue = new Queue(name, { connection: { url: redisUrl }, prefix });
    try {
      const counts = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'paused', 'waiting-children');
      total += Object.values(counts).reduce((a, b) => a + b, 0);
    } finally {
      await queue.close();
    }
  }
  return total;
}

/** Jobs ever written under the prefix, over every model version's queue (BullMQ's job id counters). */
export async function jobsWritten(redisUrl: string, prefix: string): Promise<number> {
  const client = new IORedis(redisUrl);
  try {
    const keys = await client.keys(`${prefix}:infer/*:id`);
    const counts = keys.length ? await client.mget(...keys) : [];
    return counts.reduce((n, c) => n + Number(c ?? 0), 0);
  } finally {
    client.disconnect();
  }
}

/** What a gateway's processor has run and skipped, from GET /health. */
export async function processorStats(url: string): Promise<{ rows_run: number; rows_expired: number }> {
  return (await getJson(`${url}/health`)).body.processor;
}

/** The queued work of `front` is gone from Redis and from the shared depth, and a processor started now runs none of it. */
export async function expectRemovedAndNeverRun(redisUrl: string, front: TestGateway, prefix: string): Promise<void> {
  await waitFor(async () => (await jobsInRedis(redisUrl, prefix)) === 0, 3000);
  await waitFor(() => Object.values(front.app.get(QueueDepth).snapshot().stub_v1 ?? {}).every((n) => n === 0), 3000);
  const worker = await startGateway(redisUrl, { QUEUE_PREFIX: prefix });
  try {
    await sleep(500);
    expect(await processorStats(worker.url)).toMatchObject({ rows_run: 0 });
  } finally {
    await worker.close();
  }
}
