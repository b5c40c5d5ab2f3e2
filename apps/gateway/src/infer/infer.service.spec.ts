import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { ModelRegistry } from '@bales/model-registry';
import type { InferenceQueue } from '@bales/queue';
import { EXAMPLE_INPUT } from '../../../../test/support/example-input';
import { FakeInferenceQueue } from '../../../../test/support/fake-inference-queue';
import { FakeModelRegistry } from '../../../../test/support/fake-model-registry';
import { rejection } from '../../../../test/support/rejection';
import type { InferenceCall } from '../common/inference-call.decorator';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferService } from './infer.service';

function setup(env: Record<string, string> = {}) {
  const config = loadConfig(env);
  const registry = new FakeModelRegistry([{ id: 'stub_v1' }, { id: 'resnet' }]);
  const queue = new FakeInferenceQueue(registry);
  const service = new InferService(config, registry as unknown as ModelRegistry, queue as unknown as InferenceQueue);
  const call: InferenceCall = { requestId: 'req-1', receivedAt: performance.now(), onClientGone: () => undefined, setServerTiming: () => undefined };
  const infer = (body: Partial<InferRequestDto>, over: Partial<InferenceCall> = {}) =>
    service.infer({ payload: { input: EXAMPLE_INPUT }, ...body } as InferRequestDto, { ...call, ...over });
  /** Requests admitted for the model and not yet released, as GET /models/:id reports them. */
  const pending = (id = 'stub_v1') => registry.get(id).requestsPending;
  return { registry, queue, call, infer, pending };
}

const float32Bytes = (values: readonly number[]) => Buffer.from(new Float32Array(values).buffer);

describe('InferService', () => {
  afterEach(() => jest.restoreAllMocks());

  it('queues the encoded row for DEFAULT_MODEL_ID at priority 2 with BATCHER_TIMEOUT_S when the request names none of them', async () => {
    const { queue, call, infer } = setup({ DEFAULT_MODEL_ID: 'resnet', BATCHER_TIMEOUT_S: '3' });
    await infer({});
    expect(queue.submitted).toHaveLength(1);
    const [s] = queue.submitted;
    expect(s).toMatchObject({ requestId: 'req-1', modelId: 'resnet', priority: 2, timeoutMs: 3000 });
    expect(s.onClientGone).toBe(call.onClientGone);
    expect(s.row.buffers).toEqual([float32Bytes(EXAMPLE_INPUT)]);
    expect(s.row.dims).toEqual([[128]]);
  });

  it('queues for the model, priority and timeout_ms the request names', async () => {
    const { queue, infer } = setup({ DEFAULT_MODEL_ID: 'resnet' });
    await infer({ model_id: 'stub_v1', model_type: 'classification', priority: 3, timeout_ms: 250 });
    expect(queue.submitted[0]).toMatchObject({ modelId: 'stub_v1', priority: 3, timeoutMs: 250 });
  });

  it('defaults the priority to the only level when PRIORITY_LEVELS is 1', async () => {
    const { queue, infer } = setup({ PRIORITY_LEVELS: '1' });
    await infer({});
    expect(queue.submitted[0].priority).toBe(1);
  });

  it('answers with its own request_id, the outcome of its row, and latency_ms counted from receivedAt', async () => {
    const { queue, infer } = setup();
    jest.spyOn(performance, 'now').mockReturnValue(1000);
    queue.answer = async (s) => ({ id: s.requestId, ok: true, model_id: 'stub_v1', model_version: '7', result: { values: [0.5] }, batch_size: 6, queued_ms: 3.25 });
    const res = await infer({}, { requestId: 'abc', receivedAt: 1000 - 12.3456 });
    expect(res).toEqual({ request_id: 'abc', model_id: 'stub_v1', model_version: '7', result: { values: [0.5] }, latency_ms: 12.346, batch_size: 6, queued_ms: 3.25 });
  });

  it('holds the admission while the row is queued, so an unload waits for it, and releases it once answered', async () => {
    const { queue, infer, pending } = setup();
    const seen: number[] = [];
    queue.answer = (s) => {
      seen.push(pending());
      return queue.runAlone(s);
    };
    await infer({});
    expect(seen).toEqual([1]);
    expect(pending()).toBe(0);
  });

  it('answers INVALID_INPUT and releases the admission, queueing nothing, when model_type does not match the model', async () => {
    const { queue, infer, pending } = setup();
    const err = await rejection(infer({ model_type: 'regression' }));
    expect(err.code).toBe(ErrorCode.INVALID_INPUT);
    expect(err.message).toBe("model_type 'regression' does not match model 'stub_v1', a classification model");
    expect(queue.submitted).toHaveLength(0);
    expect(pending()).toBe(0);
  });

  it.each([ErrorCode.QUEUE_FULL, ErrorCode.QUEUE_UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.INFERENCE_FAILED])(
    'passes %s from the queue on unchanged and releases the admission',
    async (code) => {
      const { queue, infer, pending } = setup();
      const refusal = new BalesError(code, 'from the queue');
      queue.answer = () => Promise.reject(refusal);
      expect(await rejection(infer({}))).toBe(refusal);
      expect(pending()).toBe(0);
    },
  );

  it('answers INVALID_REQUEST for a priority above PRIORITY_LEVELS, before admitting or queueing anything', async () => {
    const { queue, infer, pending } = setup({ PRIORITY_LEVELS: '3' });
    const err = await rejection(infer({ priority: 4 }));
    expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
    expect(err.message).toBe('priority must be an integer from 1 to 3');
    expect(queue.submitted).toHaveLength(0);
    expect(pending()).toBe(0);
  });

  it('answers INVALID_REQUEST for a timeout_ms above BATCHER_TIMEOUT_S and accepts BATCHER_TIMEOUT_S itself', async () => {
    const { queue, infer } = setup({ BATCHER_TIMEOUT_S: '2' });
    const err = await rejection(infer({ timeout_ms: 2001 }));
    expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
    expect(err.message).toBe('timeout_ms must be an integer from 1 to 2000');
    expect(queue.submitted).toHaveLength(0);
    await infer({ timeout_ms: 2000 });
    expect(queue.submitted[0].timeoutMs).toBe(2000);
  });

  it('answers MODEL_NOT_FOUND for a model the registry does not serve, and INVALID_INPUT for a payload that does not fit, queueing nothing', async () => {
    const { queue, infer, pending } = setup();
    expect((await rejection(infer({ model_id: 'missing' }))).code).toBe(ErrorCode.MODEL_NOT_FOUND);
    const err = await rejection(infer({ payload: { input: [1, 2, 3] } }));
    expect(err.code).toBe(ErrorCode.INVALID_INPUT);
    expect(err.message).toContain('float32[128]');
    expect(queue.submitted).toHaveLength(0);
    expect(pending()).toBe(0);
  });
});
