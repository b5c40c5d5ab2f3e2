import { loadConfig } from '@bales/config';
import { BalesMetrics, QueueDepthSample } from './metrics';

const metricsWith = (env: Record<string, string> = {}) => new BalesMetrics(loadConfig(env));

describe('BalesMetrics', () => {
  it('keeps counts per gateway, so two gateways in one process never share them', async () => {
    const a = metricsWith();
    const b = metricsWith();
    a.request('stub_v1', 200, 3);
    a.request('stub_v1', 200, 4);
    const textA = await a.registry.metrics();
    const textB = await b.registry.metrics();
    expect(textA).toContain('bales_requests_total{model_id="stub_v1",status="200"} 2');
    expect(textB).not.toContain('bales_requests_total{model_id="stub_v1"');
  });

  it('reads queue depth at scrape time and drops a model whose queue is gone', async () => {
    const m = metricsWith({ ENABLE_PROMETHEUS: 'false' });
    let depths: QueueDepthSample[] = [
      { modelId: 'a', priority: 1, rows: 5 },
      { modelId: 'b', priority: 3, rows: 2 },
    ];
    m.readQueueDepthFrom(() => depths);
    let text = await m.registry.metrics();
    expect(text).toContain('bales_queue_depth{model_id="a",priority="1"} 5');
    expect(text).toContain('bales_queue_depth{model_id="b",priority="3"} 2');
    depths = [{ modelId: 'a', priority: 1, rows: 1 }];
    text = await m.registry.metrics();
    expect(text).toContain('bales_queue_depth{model_id="a",priority="1"} 1');
    expect(text).not.toContain('model_id="b"');
  });

  it("collects Node's process metrics only when ENABLE_PROMETHEUS is on", async () => {
    expect(await metricsWith().registry.metrics()).toContain('process_cpu_user_seconds_total');
    expect(await metricsWith({ ENABLE_PROMETHEUS: 'false' }).registry.metrics()).not.toContain('process_cpu_user_seconds_total');
  });
});
