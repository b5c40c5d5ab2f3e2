/**
 * npm run bench:light [-- --rate 50 --seconds 10]
 *
 * The stub model at light load: a throwaway redis-server and one gateway, a paced open-loop client at `rate`
 * requests per second (one in flight at a time at 50 req/s), and where each request's time goes, stage by stage,
 * from the gateway's Server-Timing header: request (HTTP, validation, encoding), queue (the Redis write until a
 * consumer took the job), batch (batcher and the hop to a worker thread), inference, return (the way back).
 * The same runs against a second gateway with DIRECT_DISPATCH=false, where every request goes through Redis.
 * Target: latency_ms p50 at most inference p50 + 1.0 ms. Writes bench-results/light.json.
 */
import { EXAMPLE_INPUT } from '../../test/support/example-input';
import { TestRedis } from '../../test/support/redis-server';
import { argValue, machine, prepareModel, round, writeResult } from './common';
import { openLoop } from './load';
import { Server, startGateway } from './processes';

const TARGET_OVER_INFERENCE_MS = 1.0;
const STAGES = ['request', 'queue', 'batch', 'inference', 'return', 'total'];

async function main(): Promise<void> {
  const model = prepareModel('stub');
  const rate = Number(argValue('rate') ?? 50);
  const seconds = Number(argValue('seconds') ?? 10);
  const body = JSON.stringify({ model_id: model.id, priority: 2, payload: { input: EXAMPLE_INPUT } });
  const redis = await TestRedis.start();
  const env = { REDIS_URL: redis.url, MODELS_DIR: model.modelsDir, DEFAULT_MODEL_ID: model.id };
  const direct = await startGateway('direct', { ...env, QUEUE_PREFIX: 'bench-direct' }, body);
  const queued = await startGateway('queued', { ...env, QUEUE_PREFIX: 'bench-queued', DIRECT_DISPATCH: 'false' }, body);
  try {
    const measure = async (server: Server) => {
      // A first run warms the gateway's code paths and the client's connection; the second is measured.
      await openLoop(`${server.url}/infer`, body, rate, 2);
      return openLoop(`${server.url}/infer`, body, rate, seconds);
    };
    const runs = { direct: await measure(direct), queued: await measure(queued) };
    const stages = runs.direct.stagesP50Ms ?? {};
    const limit = round((stages.inference ?? NaN) + TARGET_OVER_INFERENCE_MS, 3);
    const pass = runs.direct.gatewayP50Ms !== undefined && runs.direct.gatewayP50Ms <= limit;
    const cell = (n: number | undefined) => (n ?? NaN).toFixed(3).padStart(10);
    console.log(`\n=== Light load: ${model.id} at ${rate} req/s for ${seconds} s (${machine().cores} cores, client on the same cores) ===`);
    console.log(`${'stage p50, ms'.padEnd(16)}${'direct'.padStart(10)}${'queued'.padStart(10)}`);
    for (const name of STAGES) console.log(`${name.padEnd(16)}${cell(stages[name])}${cell(runs.queued.stagesP50Ms?.[name])}`);
    console.log(`${'client p50'.padEnd(16)}${cell(runs.direct.p50)}${cell(runs.queued.p50)}`);
    console.log(`${'client p99'.padEnd(16)}${cell(runs.direct.p99)}${cell(runs.queued.p99)}`);
    console.log(`errors: direct ${runs.direct.errors}, queued ${runs.queued.errors}`);
    console.log(`target: latency_ms p50 ${runs.direct.gatewayP50Ms?.toFixed(3)} ms <= inference p50 + ${TARGET_OVER_INFERENCE_MS} ms = ${limit.toFixed(3)} ms: ${pass ? 'PASS' : 'FAIL'}`);
    const file = writeResult('light.json', { benchmark: 'light', date: new Date().toISOString(), machine: machine(), model: model.id, rate, seconds, runs, target: { limitMs: limit, pass } });
    console.log(`wrote ${file}`);
  } finally {
    await Promise.all([direct.stop(), queued.stop()]);
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
