// Hot swap under load: constant traffic, and a reload every few seconds alternating two weight files of the
// same signature. Not one request may fail, and every reload must succeed.
//   k6 run -e BASE_URL=http://localhost:8000 -e RATE=1000 -e SWAP_EVERY_S=5 k6/hotswap.js
// Paths are as the gateway sees them (relative to its working directory, inside MODELS_DIR).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const MODEL_ID = __ENV.MODEL_ID || 'stub_v1';
const DURATION = __ENV.DURATION || '60s';
const WEIGHTS = [__ENV.WEIGHTS_B || './models/stub_v2.onnx', __ENV.WEIGHTS_A || './models/stub_v1/model.onnx'];
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
const BODY = JSON.stringify({ model_id: MODEL_ID, priority: 2, payload: { input: INPUT } });
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const ADMIN_HEADERS = __ENV.ADMIN_TOKEN ? { ...JSON_HEADERS, Authorization: `Bearer ${__ENV.ADMIN_TOKEN}` } : JSON_HEADERS;

const reloadMs = new Trend('reload_load_ms', true);
const versionsSeen = new Counter('answers_by_version');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    traffic: {
      executor: 'constant-arrival-rate',
      exec: 'traffic',
      rate: Number(__ENV.RATE || 1000),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 100,
      maxVUs: Number(__ENV.MAX_VUS || 1000),
    },
    swaps: {
      executor: 'constant-arrival-rate',
      exec: 'swap',
      rate: 1,
      timeUnit: `${Number(__ENV.SWAP_EVERY_S || 5)}s`,
      duration: DURATION,
      startTime: '2s',
      preAllocatedVUs: 1,
      maxVUs: 2,
    },
  },
  thresholds: {
    'http_req_failed{scenario:traffic}': ['rate==0'],
    'checks{scenario:swaps}': ['rate==1'],
    'checks{scenario:traffic}': ['rate==1'],
  },
};

export function traffic() {
  const res = http.post(`${BASE_URL}/infer`, BODY, { headers: JSON_HEADERS });
  check(res, { 'answered 200': (r) => r.status === 200 });
  if (res.status === 200) versionsSeen.add(1, { model_version: String(res.json('model_version')) });
}

export function swap() {
  const weights = WEIGHTS[exec.scenario.iterationInTest % WEIGHTS.length];
  const res = http.post(`${BASE_URL}/models/${MODEL_ID}/reload`, JSON.stringify({ weights_path: weights }), { headers: ADMIN_HEADERS });
  check(res, { 'reload answered 200 with a new version': (r) => r.status === 200 && r.json('new_version') !== r.json('old_version') });
  if (res.status === 200) reloadMs.add(Number(res.json('load_ms')));
}
