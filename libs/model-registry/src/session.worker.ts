/**
 * Worker-thread entry. Every ONNX Runtime call lives here: session creation and run() are synchronous
 * native work that would stall HTTP and BullMQ lock renewal on the event-loop thread.
 */
import { parentPort } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { postprocess } from './postprocess';
import { TYPED_ARRAYS, type Feed, type Signature, type TensorSpec, type WorkerReply, type WorkerRequest } from './protocol';

const sessions = new Map<string, InferenceSession>();


function toTensor(feed: Feed): Tensor {
  const data = new TYPED_ARRAYS[feed.type](feed.data);
  return new Tensor(feed.type, data as never, feed.dims);
}

function specs(metadata: readonly InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

/** One run on zeros at batch 1, so the first real batch does not pay for lazy initialisation. */
async function warmUp(session: InferenceSession, inputs: TensorSpec[]): Promise<void> {
  const feeds: Record<string, Tensor> = {};
  for (const spec of inputs) {
    const type = spec.type as Feed['type'];
    if (!(type in TYPED_ARRAYS)) throw new Error(`input ${spec.name} has unsupported element type ${spec.type}`);
    const dims = spec.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
    const size = dims.reduce((a, b) => a * b, 1);
    feeds[spec.name] = new Tensor(type, new TYPED_ARRAYS[type](size) as never, dims);
  }
  await session.run(feeds);
}

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  switch (msg.op) {
    case 'load': {
      const session = await InferenceSession.create(msg.path, {
        intraOpNumThreads: msg.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      const signature: Signature = { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) };
      try {
        await warmUp(session, signature.inputs);
      } catch (err) {
        await session.release();
        throw err;
      }
      const previous = sessions.get(msg.key);
      sessions.set(msg.key, session);
      await previous?.release();
      return { id: msg.id, ok: true, signature };
    }
    case 'unload': {
      const session = sessions.get(msg.key);
      sessions.delete(msg.key);
      await session?.release();
      return { id: msg.id, ok: true };
    }
    case 'run': {
      const session = sessions.get(msg.key);
      if (!session) throw new Error(`no session ${msg.key} in this worker`);
      const feeds: Record<string, Tensor> = {};
      for (const feed of msg.feeds) feeds[feed.name] = toTensor(feed);
      const startedAt = performance.timeOrigin + performance.now();
      const outputs = await session.run(feeds);
      const inferenceMs = performance.timeOrigin + performance.now() - startedAt;
      const results = postprocess(msg.task, msg.rows, outputs as never, msg.labels, msg.rawRows);
      for (const tensor of Object.values(outputs)) tensor.dispose();
      return { id: msg.id, ok: true, run: { results, startedAt, inferenceMs } };
    }
  }
}

parentPort!.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    (reply) => parentPort!.postMessage(reply),
    (err: unknown) => parentPort!.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
  );
});
