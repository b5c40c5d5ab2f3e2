// A spike: steady traffic, a sudden jump to many times the rate, and back. Shedding with 429 (queue full) is
// the designed answer to overload, so it is counted apart; anything else that fails is an error.
//   k6 run -e BASE_URL=http://localhost:8000 -e BASE_RATE=200 -e SPIKE_RATE=5000 k6/spike.js
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Rate, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const MODEL_ID = __ENV.MODEL_ID || 'stub_v1';
const BASE_RATE = Number(__ENV.BASE_RATE || 200);
const SPIKE_RATE = Number(__ENV.SPIKE_RATE || 5000);
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
const BODY = JSON.stringify({ model_id: MODEL_ID, priority: 2, payload: { input: INPUT } });

const shed = new Rate('shed_429');
const gatewayLatency = new Trend('latency_ms', true);

http.setResponseCallback(http.expectedStatuses(200, 429));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: BASE_RATE,
      timeUnit: '1s',
      preAllocatedVUs: 200,
      maxVUs: Number(__ENV.MAX_VUS || 2000),
      stages: [
        { target: BASE_RATE, duration: '20s' },
        { target: SPIKE_RATE, duration: '5s' },
        { target: SPIKE_RATE, duration: '15s' },
        { target: BASE_RATE, duration: '5s' },
        { target: BASE_RATE, duration: '20s' },
      ],
    },
  },
  thresholds: {
    // No 5xx, no timeouts, no dropped connections: only 200 or an immediate 429.
    http_req_failed: ['rate==0'],
    shed_429: [`rate<${__ENV.MAX_SHED || 0.2}`],
    // Back to normal once the spike is over: checked on the last stage through its tag.
    'http_req_duration{phase:after}': [`p(99)<${__ENV.P99_AFTER_MS || 50}`],
  },
};

export default function () {
  const res = http.post(`${BASE_URL}/infer`, BODY, { headers: { 'Content-Type': 'application/json' }, tags: { phase: phase() } });
  check(res, { 'answered 200 or 429': (r) => r.status === 200 || r.status === 429 });
  shed.add(res.status === 429);
  if (res.status === 200) gatewayLatency.add(Number(res.json('latency_ms')));
}

/** before, spike or after, from the time since the scenario started (the stages above). */
function phase() {
  const s = (Date.now() - exec.scenario.startTime) / 1000;
  return s < 20 ? 'before' : s < 45 ? 'spike' : s < 50 ? 'ramp-down' : 'after';
}
