// A few requests with checks on the response contract.  k6 run -e BASE_URL=http://localhost:8000 k6/smoke.js
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const MODEL_ID = __ENV.MODEL_ID || 'stub_v1';
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);

/** @type {import('k6/options').Options} */
export const options = {
  vus: 1,
  iterations: Number(__ENV.ITERATIONS || 10),
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'] },
};

export default function () {
  const res = http.post(`${BASE_URL}/infer`, JSON.stringify({ model_id: MODEL_ID, model_type: 'classification', priority: 2, payload: { input: INPUT } }), {
    headers: { 'Content-Type': 'application/json' },
  });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has request_id': (r) => typeof r.json('request_id') === 'string',
    'names the model and its version': (r) => r.json('model_id') === MODEL_ID && typeof r.json('model_version') === 'string',
    'has a label and a confidence': (r) => Number.isInteger(r.json('result.label')) && Number(r.json('result.confidence')) > 0,
    'has latency_ms and queued_ms': (r) => Number(r.json('latency_ms')) >= 0 && Number(r.json('queued_ms')) >= 0,
    'has batch_size': (r) => Number(r.json('batch_size')) >= 1,
  });
}
