import { Queue } from 'bullmq';
import { QueueDepth } from '@bales/queue';
import { TestGateway, getJson, sleep, startGateway, waitFor } from './gateway';

/** Jobs of the infer queue still in Redis, in any state, for the given prefix. */
export async function jobsInRedis(redisUrl: string, prefix: string): Promise<number> {
  const queue = new Queue('infer', { connection: { url: redisUrl }, prefix });
  try {
    const counts = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'paused', 'waiting-children');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
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
