/**
 * Worker-thread entry. Every ONNX Runtime call lives here: session creation and run() are synchronous
 * native work that would stall HTTP and BullMQ lock renewal on the event-loop thread.
 */
import { parentPort } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { postprocess } from './postprocess';
import { LoadFailure, TYPED_ARRAYS, type Feed, type Signature, type TensorSpec, type WarmupReport, type WorkerReply, type WorkerRequest } from './protocol';
import { checkInputTypes, createSession, warmUp } from './session-load';

const sessions = new Map<string, InferenceSession>();


function toTensor(feed: Feed): Tensor {
  const data = new TYPED_ARRAYS[feed.type](feed.data);
  return new Tensor(feed.type, data as never, feed.dims);
}

function specs(metadata: readonly InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  switch (msg.op) {
    case 'load': {
      const session = await createSession(msg.path, msg.intraOpThreads);
      const signature: Signature = { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) };
      let warmup: WarmupReport;
      try {
        checkInputTypes(signature.inputs);
        warmup = await warmUp(session, signature, msg.warmup, msg.batchAxes);
      } catch (err) {
        await session.release();
        // The signature was read: the gateway shows it beside the reason.
        throw err instanceof LoadFailure ? new LoadFailure(err.kind, err.message, signature) : err;
      }
      const previous = sessions.get(msg.key);
      sessions.set(msg.key, session);
      await previous?.release();
      return { id: msg.id, ok: true, signature, warmup };
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
      const results = postprocess(msg.task, msg.rows, outputs as never, msg.axes, msg.labels, msg.rawRows);
      for (const tensor of Object.values(outputs)) tensor.dispose();
      return { id: msg.id, ok: true, run: { results, startedAt, inferenceMs } };
    }
  }
}

parentPort!.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    (reply) => parentPort!.postMessage(reply),
    (err: unknown) => {
      const failure = err instanceof LoadFailure ? { kind: err.kind, signature: err.signature } : {};
      parentPort!.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err), ...failure } satisfies WorkerReply);
    },
  );
});
