import { loadConfig } from '@bales/config';
import { BalesMetrics, ModelStateSample, QueueDepthSample } from './metrics';

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

  it('reads each model state at scrape time, 1 for the one it is in and 0 for the others, and drops a deleted model', async () => {
    const m = metricsWith({ ENABLE_PROMETHEUS: 'false' });
    let models: ModelStateSample[] = [
      { modelId: 'good', state: 'ready' },
      { modelId: 'bad', state: 'failed' },
    ];
    m.readModelStatesFrom(['loading', 'ready', 'failed'], () => models);
    let text = await m.registry.metrics();
    expect(text).toContain('bales_model_state{model_id="good",state="ready"} 1');
    expect(text).toContain('bales_model_state{model_id="good",state="failed"} 0');
    expect(text).toContain('bales_model_state{model_id="bad",state="failed"} 1');
    expect(text).toContain('bales_model_state{model_id="bad",state="loading"} 0');
    models = [{ modelId: 'good', state: 'ready' }];
    text = await m.registry.metrics();
    expect(text).not.toContain('model_id="bad"');
  });

  it('takes milliseconds from its callers and observes seconds, unless METRICS_TIME_UNIT=ms', async () => {
    const seconds = metricsWith();
    const ms = metricsWith({ METRICS_TIME_UNIT: 'ms' });
    for (const m of [seconds, ms]) {
      m.request('stub_v1', 200, 2.5);
      m.queued(7);
      m.batch(1, 40);
    }
    const s = await seconds.registry.metrics();
    expect(s).toContain('bales_request_latency_seconds_bucket{le="0.002"} 0');
    expect(s).toContain('bales_request_latency_seconds_bucket{le="0.003"} 1');
    expect(s).toContain('bales_request_latency_seconds_sum 0.0025');
    expect(s).toContain('bales_queue_wait_seconds_sum 0.007');
    expect(s).toContain('bales_inference_seconds_sum 0.04');
    expect(s).not.toContain('bales_request_latency_ms');
    const m = await ms.registry.metrics();
    expect(m).toContain('bales_request_latency_ms_bucket{le="3"} 1');
    expect(m).toContain('bales_request_latency_ms_sum 2.5');
    expect(m).toContain('bales_queue_wait_ms_sum 7');
    expect(m).toContain('bales_inference_ms_sum 40');
    expect(m).not.toContain('bales_request_latency_seconds');
  });

  it("collects Node's process metrics only when ENABLE_PROMETHEUS is on", async () => {
    expect(await metricsWith().registry.metrics()).toContain('process_cpu_user_seconds_total');
    expect(await metricsWith({ ENABLE_PROMETHEUS: 'false' }).registry.metrics()).not.toContain('process_cpu_user_seconds_total');
  });
});
