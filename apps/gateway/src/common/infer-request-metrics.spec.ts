import type { HttpAdapterHost } from '@nestjs/core';
import { loadConfig } from '@bales/config';
import type { ModelRegistry } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { FakeModelRegistry } from '../../../../test/support/fake-model-registry';
import { sample } from '../../../../test/support/observability';
import { InferRequestMetrics } from './infer-request-metrics';

/** What the hook reads of an answered request. */
interface Answered {
  route?: string;
  body?: unknown;
  params?: Record<string, string>;
  status?: number;
  elapsedMs?: number;
}

type Hook = (request: unknown, reply: unknown, done: () => void) => void;

function setup() {
  const hooks: { name: string; fn: Hook }[] = [];
  const fastify = { addHook: (name: string, fn: Hook) => hooks.push({ name, fn }) };
  const adapter = { httpAdapter: { getInstance: () => fastify } } as unknown as HttpAdapterHost;
  const metrics = new BalesMetrics(loadConfig({ ENABLE_PROMETHEUS: 'false', METRICS_TIME_UNIT: 'ms' }));
  // DEFAULT_MODEL_ID is not stub_v1, so a request naming no model is told apart from one naming stub_v1.
  const registry = new FakeModelRegistry([{ id: 'stub_v1' }, { id: 'resnet' }]);
  new InferRequestMetrics(adapter, metrics, registry as unknown as ModelRegistry, loadConfig({ DEFAULT_MODEL_ID: 'resnet' })).onModuleInit();
  let done = 0;
  /** Runs the registered onResponse hook for one answered request. */
  const respond = ({ route, body, params = {}, status = 200, elapsedMs = 1 }: Answered) =>
    hooks[0].fn({ routeOptions: { url: route }, body, params }, { statusCode: status, elapsedTime: elapsedMs }, () => done++);
  const text = () => metrics.registry.metrics();
  const requests = async (modelId: string, status = '200') => sample(await text(), 'bales_requests_total', { model_id: modelId, status });
  return { hooks, respond, text, requests, done: () => done };
}

describe('InferRequestMetrics', () => {
  it('registers one onResponse hook, so requests are counted after the reply went out', () => {
    const { hooks } = setup();
    expect(hooks.map((h) => h.name)).toEqual(['onResponse']);
  });

  it('counts POST /infer by the model the body names, with the final status and the latency', async () => {
    const { respond, requests, text } = setup();
    respond({ route: '/infer', body: { model_id: 'stub_v1' }, status: 200, elapsedMs: 7 });
    respond({ route: '/infer', body: { model_id: 'stub_v1' }, status: 422, elapsedMs: 2 });
    expect(await requests('stub_v1', '200')).toBe(1);
    expect(await requests('stub_v1', '422')).toBe(1);
    expect(sample(await text(), 'bales_request_latency_ms_sum')).toBe(9);
  });

  it('counts POST /infer naming no model, or with no readable body, under DEFAULT_MODEL_ID', async () => {
    const { respond, requests } = setup();
    respond({ route: '/infer', body: { payload: {} } });
    respond({ route: '/infer', body: undefined, status: 400 });
    respond({ route: '/infer', body: 'not json', status: 400 });
    respond({ route: '/infer', body: null, status: 400 });
    expect(await requests('resnet', '200')).toBe(1);
    expect(await requests('resnet', '400')).toBe(3);
    expect(await requests('stub_v1', '200')).toBe(0);
  });

  it("counts a model the registry does not have, or a model_id that is not a string, as 'unknown'", async () => {
    const { respond, requests, text } = setup();
    for (const model_id of ['made_up', 42, ['stub_v1'], { id: 'stub_v1' }, null]) respond({ route: '/infer', body: { model_id }, status: 404 });
    expect(await requests('unknown', '404')).toBe(5);
    expect(await text()).not.toContain('made_up');
  });

  it('counts both V2 infer routes by the model the path names', async () => {
    const { respond, requests } = setup();
    respond({ route: '/v2/models/:name/infer', params: { name: 'stub_v1' } });
    respond({ route: '/v2/models/:name/versions/:version/infer', params: { name: 'stub_v1', version: '1' }, status: 504 });
    respond({ route: '/v2/models/:name/infer', params: { name: 'made_up' }, status: 404 });
    expect(await requests('stub_v1', '200')).toBe(1);
    expect(await requests('stub_v1', '504')).toBe(1);
    expect(await requests('unknown', '404')).toBe(1);
  });

  it('ignores every other route, and a request that matched none, but lets each go on', async () => {
    const { respond, text, done } = setup();
    for (const route of ['/health', '/metrics', '/models', '/models/:id/reload', '/v2/models/:name', '/v2/models/:name/ready', undefined]) {
      respond({ route, body: { model_id: 'stub_v1' }, params: { name: 'stub_v1' } });
    }
    expect(await text()).not.toMatch(/^bales_requests_total\{/m);
    respond({ route: '/infer', body: {} });
    expect(done()).toBe(8);
  });
});
