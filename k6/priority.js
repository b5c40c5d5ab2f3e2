// Mixed priorities under saturation: p1 must overtake p3. A background scenario saturates the gateway with
// priority-3 work; meanwhile each probe iteration sends one request of every priority at the same instant and
// records whether priority 1 started no later than priority 3 (the gateway's queued_ms).
//   k6 run -e BASE_URL=http://localhost:8000 -e BULK_RATE=8000 k6/priority.js
import http from 'k6/http';
import { check } from 'k6';
import { Rate, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const MODEL_ID = __ENV.MODEL_ID || 'stub_v1';
const DURATION = __ENV.DURATION || '60s';
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
const PARAMS = { headers: { 'Content-Type': 'application/json' } };
/** @param {number} priority */
const body = (priority) => JSON.stringify({ model_id: MODEL_ID, priority, payload: { input: INPUT } });

// One trend per metric, split by priority through tags: thresholds below name each sub-metric.
const latency = new Trend('latency_ms', true);
const queued = new Trend('queued_ms', true);
const p1First = new Rate('p1_not_after_p3');

http.setResponseCallback(http.expectedStatuses(200, 429));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    bulk: {
      executor: 'constant-arrival-rate',
      exec: 'bulk',
      rate: Number(__ENV.BULK_RATE || 8000),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 200,
      maxVUs: Number(__ENV.MAX_VUS || 2000),
    },
    probes: {
      executor: 'constant-arrival-rate',
      exec: 'probe',
      rate: Number(__ENV.PROBE_RATE || 20),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 20,
      maxVUs: 200,
    },
  },
  thresholds: {
    // p1 overtakes p3 in (almost) every probe, and its tail stays below p3's.
    p1_not_after_p3: [`rate>${__ENV.MIN_P1_FIRST || 0.9}`],
    'queued_ms{priority:1}': [`p(90)<${__ENV.P1_QUEUED_P90_MS || 20}`],
    'latency_ms{priority:1}': [`p(99)<${__ENV.P1_P99_MS || 50}`],
    'http_req_failed{scenario:probes}': ['rate==0'],
  },
};

export function bulk() {
  http.post(`${BASE_URL}/infer`, body(3), { ...PARAMS, tags: { priority: '3', kind: 'bulk' } });
}

export function probe() {
  const [r1, r2, r3] = http.batch([
    ['POST', `${BASE_URL}/infer`, body(1), { ...PARAMS, tags: { priority: '1' } }],
    ['POST', `${BASE_URL}/infer`, body(2), { ...PARAMS, tags: { priority: '2' } }],
    ['POST', `${BASE_URL}/infer`, body(3), { ...PARAMS, tags: { priority: '3' } }],
  ]);
  const all = [r1, r2, r3];
  const ok = check(all, { 'every priority answered 200': (rs) => rs.every((r) => r.status === 200) });
  if (!ok) return;
  all.forEach((r, i) => {
    const tags = { priority: String(i + 1) };
    latency.add(Number(r.json('latency_ms')), tags);
    queued.add(Number(r.json('queued_ms')), tags);
  });
  p1First.add(Number(r1.json('queued_ms')) <= Number(r3.json('queued_ms')));
}
