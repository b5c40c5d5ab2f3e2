import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import type { ModelRegistry } from '@bales/model-registry';
import type { InferOutcome, InferenceQueue } from '@bales/queue';
import { EXAMPLE_INPUT } from '../../../../test/support/example-input';
import { FakeInferenceQueue } from '../../../../test/support/fake-inference-queue';
import { FakeModelRegistry } from '../../../../test/support/fake-model-registry';
import { rejection } from '../../../../test/support/rejection';
import type { InferenceCall } from '../common/inference-call.decorator';
import { V2InferRequestDto, V2InputTensorDto } from './dto/v2-infer-request.dto';
import { V2Service } from './v2.service';

/** A model with an int64 input and two outputs of different widths and types. */
const TWO_HEADS = {
  id: 'two_heads',
  task: 'raw' as const,
  signature: {
    inputs: [{ name: 'x', type: 'int64', shape: [-1, 4] }],
    outputs: [
      { name: 'a', type: 'float32', shape: [-1, 2] },
      { name: 'b', type: 'int64', shape: ['batch', 3] },
    ],
  },
};

/** A bool input, and an output of a type the protocol has no binary form for here. */
const FLAGS = {
  id: 'flags',
  task: 'raw' as const,
  signature: {
    inputs: [{ name: 'f', type: 'bool', shape: [-1, 3] }],
    outputs: [
      { name: 'half', type: 'float16', shape: [-1, 3] },
      { name: 'same', type: 'bool', shape: [-1, 3] },
    ],
  },
};

function setup(env: Record<string, string> = {}) {
  const registry = new FakeModelRegistry([{ id: 'stub_v1' }, TWO_HEADS, FLAGS]);
  const queue = new FakeInferenceQueue(registry);
  const service = new V2Service(loadConfig(env), registry as unknown as ModelRegistry, queue as unknown as InferenceQueue);
  const call: InferenceCall = { requestId: 'req-1', receivedAt: performance.now(), onClientGone: () => undefined, setServerTiming: () => undefined };
  const infer = (name: string, req: Partial<V2InferRequestDto>, version?: string) =>
    service.infer(name, version, { inputs: [stubTensor(1)], ...req } as V2InferRequestDto, call).then((answer) => answer.response);
  const pending = (id = 'stub_v1') => registry.get(id).requestsPending;
  /** The whole answer, for a request with binary tensor data (`tensorData`, the bytes after its JSON header) or not. */
  const answer = (name: string, req: Partial<V2InferRequestDto>, tensorData?: Buffer) => service.infer(name, undefined, req as V2InferRequestDto, call, tensorData);
  return { registry, queue, service, call, infer, answer, pending };
}

/** `rows` copies of the example input as one FP32 tensor for the stub. */
const stubTensor = (rows: number, datatype = 'FP32'): V2InputTensorDto =>
  ({ name: 'input', datatype, shape: [rows, 128], data: Array.from({ length: rows }, () => EXAMPLE_INPUT).flat() }) as V2InputTensorDto;

const settled = async (p: Promise<unknown>) => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('V2Service', () => {
  describe('metadata', () => {
    it('describes the model in Open Inference Protocol terms: its version, datatypes, -1 for the batch dimension, and batch axes', () => {
      const { service } = setup();
      expect(service.metadata('two_heads')).toEqual({
        name: 'two_heads',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'x', datatype: 'INT64', shape: [-1, 4], parameters: { batch_axis: 0 } }],
        outputs: [
          { name: 'a', datatype: 'FP32', shape: [-1, 2], parameters: { batch_axis: 0 } },
          { name: 'b', datatype: 'INT64', shape: [-1, 3], parameters: { batch_axis: 0 } },
        ],
        parameters: { max_batch_size: 32 },
      });
    });

    it('answers MODEL_NOT_FOUND for a version other than the one served, naming the one served', async () => {
      const { service, registry } = setup();
      await registry.reload('stub_v1', 'stub_v2.onnx');
      expect(service.metadata('stub_v1', '2').versions).toEqual(['2']);
      const other = await rejection(() => service.metadata('stub_v1', '1'));
      expect([other.code, other.message]).toEqual([ErrorCode.MODEL_NOT_FOUND, "model 'stub_v1' has no version '1'; it serves version '2'"]);
      expect((await rejection(() => service.metadata('missing'))).code).toBe(ErrorCode.MODEL_NOT_FOUND);
    });
  });

  describe('modelReady', () => {
    it('is true for a served model, and false while it drains or while the registry is not ready', async () => {
      const { service, registry } = setup();
      expect(service.modelReady('stub_v1')).toBe(true);
      registry.ready = false;
      expect(service.modelReady('stub_v1')).toBe(false);
      registry.ready = true;
      const held = registry.admit('stub_v1', { input: EXAMPLE_INPUT });
      const unloading = registry.unregister('stub_v1');
      expect(service.modelReady('stub_v1')).toBe(false);
      held.release();
      await unloading;
    });
  });

  describe('infer', () => {
    it('queues one row per batch entry, each with its own id, the priority, the deadline and the client-gone hook', async () => {
      const { infer, queue, call } = setup({ BATCHER_TIMEOUT_S: '3' });
      await infer('stub_v1', { inputs: [stubTensor(3)] });
      expect(queue.submitted.map((s) => s.requestId)).toEqual(['req-1/0', 'req-1/1', 'req-1/2']);
      for (const s of queue.submitted) {
        expect(s).toMatchObject({ modelId: 'stub_v1', priority: 2, timeoutMs: 3000 });
        expect(s.onClientGone).toBe(call.onClientGone);
        // Rows answer with every output tensor, not the model's task result.
        expect(s.row.raw).toBe(true);
        expect(s.row.buffers).toEqual([Buffer.from(new Float32Array(EXAMPLE_INPUT).buffer)]);
      }
    });

    it('takes priority and timeout_ms from parameters', async () => {
      const { infer, queue } = setup();
      await infer('stub_v1', { parameters: { priority: 1, timeout_ms: 40 } });
      expect(queue.submitted[0]).toMatchObject({ priority: 1, timeoutMs: 40 });
    });

    it('stacks every row’s outputs along the batch dimension, in the order the rows came', async () => {
      const { infer } = setup();
      const res = await infer('two_heads', { inputs: [{ name: 'x', datatype: 'INT64', shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] }] });
      expect(res).toEqual({
        model_name: 'two_heads',
        model_version: '1',
        id: 'req-1',
        outputs: [
          { name: 'a', shape: [2, 2], datatype: 'FP32', data: [1, 2, 5, 6] },
          { name: 'b', shape: [2, 3], datatype: 'INT64', data: [1, 2, 3, 5, 6, 7] },
        ],
      });
    });

    it('answers only the outputs asked for, in the order asked, under the client’s own id', async () => {
      const { infer } = setup();
      const res = await infer('two_heads', {
        id: 'mine',
        inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 4], data: [9, 8, 7, 6] }],
        outputs: [{ name: 'b' }, { name: 'a' }],
      });
      expect(res.id).toBe('mine');
      expect(res.outputs.map((o) => [o.name, o.data])).toEqual([
        ['b', [9, 8, 7]],
        ['a', [9, 8]],
      ]);
    });

    it('answers with the version that served the rows', async () => {
      const { infer, registry } = setup();
      await registry.reload('stub_v1', 'stub_v2.onnx');
      expect((await infer('stub_v1', {}, '2')).model_version).toBe('2');
    });

    it('answers INVALID_REQUEST, queueing nothing, for an unknown output', async () => {
      const { infer, queue, pending } = setup();
      const err = await rejection(infer('two_heads', { inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 4], data: [1, 2, 3, 4] }], outputs: [{ name: 'c' }] }));
      expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
      expect(err.message).toBe("unknown output 'c'; model 'two_heads' has a, b");
      expect(queue.submitted).toHaveLength(0);
      expect(pending('two_heads')).toBe(0);
    });

    it('answers INVALID_REQUEST, queueing nothing, for a datatype other than the input’s', async () => {
      const { infer, queue } = setup();
      const err = await rejection(infer('stub_v1', { inputs: [stubTensor(1, 'FP64')] }));
      expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
      expect(err.message).toBe("input 'input' is FP32 in model 'stub_v1', got datatype FP64");
      expect(queue.submitted).toHaveLength(0);
    });

    it('answers a tensor that does not fit the model with INVALID_REQUEST (400) rather than INVALID_INPUT, keeping the message', async () => {
      const { infer, queue, pending } = setup();
      const err = await rejection(infer('stub_v1', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] } as V2InputTensorDto] }));
      expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
      expect(err.message).toContain("input 'input'");
      expect(queue.submitted).toHaveLength(0);
      expect(pending()).toBe(0);
    });

    it('passes other admission errors on unchanged: a draining model is MODEL_NOT_FOUND', async () => {
      const { infer, registry } = setup();
      const held = registry.admit('stub_v1', { input: EXAMPLE_INPUT });
      const unloading = registry.unregister('stub_v1');
      expect((await rejection(infer('stub_v1', {}))).code).toBe(ErrorCode.MODEL_NOT_FOUND);
      held.release();
      await unloading;
    });

    it('answers MODEL_NOT_FOUND for a version other than the one served, queueing nothing', async () => {
      const { infer, queue } = setup();
      expect((await rejection(infer('stub_v1', {}, '9'))).code).toBe(ErrorCode.MODEL_NOT_FOUND);
      expect(queue.submitted).toHaveLength(0);
    });

    it('answers INVALID_REQUEST naming parameters. for a priority above PRIORITY_LEVELS or a timeout_ms above BATCHER_TIMEOUT_S', async () => {
      const { infer, queue } = setup({ PRIORITY_LEVELS: '3', BATCHER_TIMEOUT_S: '1' });
      const priority = await rejection(infer('stub_v1', { parameters: { priority: 4 } }));
      expect([priority.code, priority.message]).toEqual([ErrorCode.INVALID_REQUEST, 'parameters.priority must be an integer from 1 to 3']);
      const timeout = await rejection(infer('stub_v1', { parameters: { timeout_ms: 1001 } }));
      expect([timeout.code, timeout.message]).toEqual([ErrorCode.INVALID_REQUEST, 'parameters.timeout_ms must be an integer from 1 to 1000']);
      expect(queue.submitted).toHaveLength(0);
    });

    it('fails with a row’s error only once every row has settled, holding the admission until then', async () => {
      const { infer, queue, pending } = setup();
      const timeout = new BalesError(ErrorCode.TIMEOUT, 'not served within 5000 ms');
      let finishFirst!: () => void;
      queue.answer = (s) => {
        if (s.requestId.endsWith('/1')) return Promise.reject(timeout);
        return new Promise<InferOutcome>((resolve) => (finishFirst = () => resolve(queue.runAlone(s))));
      };
      const answer = rejection(infer('stub_v1', { inputs: [stubTensor(2)] }));
      expect(queue.submitted.map((s) => s.requestId)).toEqual(['req-1/0', 'req-1/1']);
      expect(await settled(answer)).toBe(false);
      expect(pending()).toBe(1);
      finishFirst();
      expect(await answer).toBe(timeout);
      expect(pending()).toBe(0);
    });

    it('releases the admission once answered', async () => {
      const { infer, queue, pending } = setup();
      const seen: number[] = [];
      queue.answer = (s) => {
        seen.push(pending());
        return queue.runAlone(s);
      };
      await infer('stub_v1', { inputs: [stubTensor(2)] });
      // One admission covers the whole tensor.
      expect(seen).toEqual([1, 1]);
      expect(pending()).toBe(0);
    });
  });

  describe('binary tensor data', () => {
    const binary = (name: string, datatype: string, shape: number[], bytes: Buffer) => ({ name, datatype, shape, parameters: { binary_data_size: bytes.length } }) as unknown as V2InputTensorDto;
    const f32 = Buffer.from(new Float32Array(EXAMPLE_INPUT).buffer);

    it('queues a binary input’s bytes as the rows, as its JSON form would be', async () => {
      const { answer, queue } = setup();
      const two = Buffer.concat([f32, f32]);
      const { response, tensors } = await answer('stub_v1', { inputs: [binary('input', 'FP32', [2, 128], two)] }, two);
      expect(queue.submitted.map((s) => s.row.buffers)).toEqual([[f32], [f32]]);
      expect(tensors).toEqual([]);
      expect(response.outputs[0]).toMatchObject({ name: 'probabilities', shape: [2, 10], data: expect.any(Array) });
    });

    it('answers the outputs asked for as binary data with their bytes, in output order, and their sizes in the response', async () => {
      const { answer } = setup();
      const x = Buffer.from(new BigInt64Array([1n, 2n, 3n, 4n]).buffer);
      const { response, tensors } = await answer('two_heads', { parameters: { binary_data_output: true }, inputs: [binary('x', 'INT64', [1, 4], x)] }, x);
      expect(response.outputs).toEqual([
        { name: 'a', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
        { name: 'b', shape: [1, 3], datatype: 'INT64', parameters: { binary_data_size: 24 } },
      ]);
      expect(Array.from(new Float32Array(tensors[0].buffer.slice(tensors[0].byteOffset, tensors[0].byteOffset + 8)))).toEqual([1, 2]);
      expect([0, 8, 16].map((at) => tensors[1].readBigInt64LE(at))).toEqual([1n, 2n, 3n]);
    });

    it('refuses a BOOL byte other than 0 or 1, naming its position, queueing nothing', async () => {
      const { answer, queue } = setup();
      const err = await rejection(answer('flags', { inputs: [binary('f', 'BOOL', [1, 3], Buffer.from([1, 0, 2]))] }, Buffer.from([1, 0, 2])));
      expect([err.code, err.message]).toEqual([ErrorCode.INVALID_REQUEST, "input 'f'[2]: expected a boolean (byte 0 or 1), got 2"]);
      expect(queue.submitted).toHaveLength(0);
    });

    it('refuses binary data for an output whose datatype has none, before queueing', async () => {
      const { answer, queue } = setup();
      const req = { inputs: [{ name: 'f', datatype: 'BOOL', shape: [1, 3], data: [true, false, true] }], outputs: [{ name: 'same' }, { name: 'half', parameters: { binary_data: true } }] } as Partial<V2InferRequestDto>;
      const err = await rejection(answer('flags', req));
      expect([err.code, err.message]).toEqual([ErrorCode.INVALID_REQUEST, "output 'half' is FLOAT16, which is sent only as JSON"]);
      expect(queue.submitted).toHaveLength(0);
    });

    it('refuses sizes that do not add up before admitting anything', async () => {
      const { answer, queue, pending } = setup();
      const err = await rejection(answer('stub_v1', { inputs: [binary('input', 'FP32', [1, 128], f32)] }, Buffer.concat([f32, Buffer.alloc(1)])));
      expect([err.code, err.message]).toEqual([ErrorCode.INVALID_REQUEST, "the inputs' parameters.binary_data_size add up to 512 bytes, but 513 bytes follow the JSON header"]);
      expect(queue.submitted).toHaveLength(0);
      expect(pending()).toBe(0);
    });
  });
});
