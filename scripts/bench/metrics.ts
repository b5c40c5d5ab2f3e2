/**
 * npm run bench:metrics [-- --requests 1000000]
 *
 * What recording the metrics costs the event loop per request, against the same loop without them, in one run:
 * per request the gateway counts the answer (bales_requests_total), observes its latency and its row's queue wait,
 * and a 32-row batch observes its size and inference time once. Both time units are measured (seconds, the
 * default, divides each observation by 1000). Writes bench-results/metrics.json.
 */
import { loadConfig } from '@bales/config';
import { BalesMetrics } from '@bales/observability';
import { argValue, median, round, thousands, writeResult } from './common';

const ROWS_PER_BATCH = 32;

/** Nanoseconds per simulated request for `record`, median of 5 runs of `requests` requests. */
function nsPerRequest(requests: number, record: (i: number) => void): number {
  const runs: number[] = [];
  // The first run only warms the JIT up.
  for (let r = 0; r <= 5; r++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < requests; i++) record(i);
    if (r > 0) runs.push(Number(process.hrtime.bigint() - started) / requests);
  }
  return median(runs);
}

function main(): void {
  const requests = Number(argValue('requests') ?? 1_000_000);
  // Latencies and waits spread over the buckets, as a real run's are; a sink keeps the baseline loop honest.
  const latency = (i: number) => 0.5 + (i % 997) * 0.05;
  let sink = 0;
  const baseline = nsPerRequest(requests, (i) => {
    sink += latency(i) + (i % 3);
  });
  const results: Record<string, { nsPerRequest: number; overBaselineNs: number }> = {};
  for (const unit of ['ms', 'seconds'] as const) {
    const metrics = new BalesMetrics(loadConfig({ METRICS_TIME_UNIT: unit }));
    const ns = nsPerRequest(requests, (i) => {
      sink += latency(i) + (i % 3);
      metrics.request('stub_v1', 200, latency(i));
      metrics.queued(latency(i) / 2);
      if (i % ROWS_PER_BATCH === 0) metrics.batch(ROWS_PER_BATCH, 0.2);
    });
    results[unit] = { nsPerRequest: round(ns, 1), overBaselineNs: round(ns - baseline, 1) };
  }
  console.log(`=== Metrics recording, ${thousands(requests)} requests, median of 5 ===`);
  console.log(`loop without metrics: ${baseline.toFixed(1)} ns per request`);
  for (const [unit, r] of Object.entries(results)) console.log(`with metrics (METRICS_TIME_UNIT=${unit}): ${r.nsPerRequest} ns per request, ${r.overBaselineNs} ns more`);
  const file = writeResult('metrics.json', { benchmark: 'metrics', date: new Date().toISOString(), requests, baselineNs: round(baseline, 1), results, sink: sink > 0 });
  console.log(`wrote ${file}`);
}

main();
