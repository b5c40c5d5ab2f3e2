// A few requests with checks on the response contract.  k6 run -e BASE_URL=http://localhost:8000 k6/smoke.js
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';
const INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);

export const options = {
  vus: 1,
  iterations: 10,
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'] },
};

export default function () {
  const res = http.post(`${BASE_URL}/infer`, JSON.stringify({ model_id: 'stub_v1', model_type: 'classification', priority: 2, payload: { input: INPUT } }), {
    headers: { 'Content-Type': 'application/json' },
  });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has request_id': (r) => typeof r.json('request_id') === 'string',
    'has a label': (r) => Number.isInteger(r.json('result.label')),
    'has batch_size': (r) => r.json('batch_size') >= 1,
  });
}
