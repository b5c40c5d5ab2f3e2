// Constant offered load (open loop) with the targets as thresholds.
//   k6 run -e BASE_URL=http://localhost:8000 -e RATE=1000 -e DURATION=60s k6/load.js
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const MODEL_ID = __ENV.MODEL_ID || 'stub_v1';
const RATE = Number(__ENV.RATE || 1000);
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
const BODY = JSON.stringify({ model_id: MODEL_ID, model_type: 'classification', priority: 2, payload: { input: INPUT } });

// The gateway's own view: latency_ms from the body (no client or network time in it), and the batch that carried it.
const gatewayLatency = new Trend('latency_ms', true);
const batchSize = new Trend('batch_size');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    constant: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Number(__ENV.VUS || 100),
      maxVUs: Number(__ENV.MAX_VUS || 1000),
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    http_req_duration: [`p(99)<${__ENV.P99_MS || 12}`],
    latency_ms: [`p(99)<${__ENV.P99_MS || 12}`],
    checks: ['rate==1'],
  },
};

export default function () {
  const res = http.post(`${BASE_URL}/infer`, BODY, { headers: { 'Content-Type': 'application/json' } });
  const ok = check(res, { 'status is 200': (r) => r.status === 200 });
  if (ok) {
    gatewayLatency.add(Number(res.json('latency_ms')));
    batchSize.add(Number(res.json('batch_size')));
  }
}
