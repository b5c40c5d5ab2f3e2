/**
 * Worker-thread entry. Every ONNX Runtime call lives here: session creation and run() are synchronous
 * native work that would stall HTTP and BullMQ lock renewal on the event-loop thread.
 */
import { parentPort } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { postprocess } from './postprocess';
import { ReusedBuffers } from './reused-buffers';
import { LoadFailure, TYPED_ARRAYS, type Feed, type FeedMemory, type Signature, type TensorSpec, type WarmupReport, type WorkerReply, type WorkerRequest } from './protocol';
import { checkInputTypes, createSession, warmUp } from './session-load';

const sessions = new Map<string, InferenceSession>();
/** The memory the event loop writes batches' inputs in, by id. */
const shared = new Map<number, SharedArrayBuffer>();
/**
 * ONNX Runtime takes no tensor over shared memory, so each batch's inputs are copied into memory of this thread's
 * own, reused as the shared memory is (one per batch in flight here).
 */
const own = new ReusedBuffers<ArrayBuffer>((bytes) => new ArrayBuffer(bytes));

/** Lends `use` memory of this thread's own until it settles. */
async function withOwnMemory<T>(bytes: number, use: (into: ArrayBuffer) => Promise<T>): Promise<T> {
  const into = own.take(bytes);
  try {
    return await use(into);
  } finally {
    own.give(into);
  }
}

/** Takes in the shared memory a batch names: first, so that a batch that fails still leaves it known here. */
function receive(memory: FeedMemory): void {
  if (memory.memory) shared.set(memory.id, memory.memory);
  for (const id of memory.forget ?? []) shared.delete(id);
}

/** Copies a batch's inputs out of the shared memory; the tensors are over `into`, which must hold `memory.bytes`. */
function toTensors(feeds: Feed[], memory: FeedMemory, into: ArrayBuffer): Record<string, Tensor> {
  const from = shared.get(memory.id);
  if (!from) throw new Error(`no shared memory ${memory.id} in this worker`);
  new Uint8Array(into, 0, memory.bytes).set(new Uint8Array(from, 0, memory.bytes));
  const tensors: Record<string, Tensor> = {};
  for (const feed of feeds) {
    const Typed = TYPED_ARRAYS[feed.type];
    tensors[feed.name] = new Tensor(feed.type, new Typed(into, feed.offset, feed.byteLength / Typed.BYTES_PER_ELEMENT) as never, feed.dims);
  }
  return tensors;
}

function specs(metadata: readonly InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

async function timedRun(session: InferenceSession, feeds: Record<string, Tensor>): Promise<{ outputs: InferenceSession.ReturnType; startedAt: number; inferenceMs: number }> {
  const startedAt = performance.timeOrigin + performance.now();
  const outputs = await session.run(feeds);
  return { outputs, startedAt, inferenceMs: performance.timeOrigin + performance.now() - startedAt };
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
      receive(msg.memory);
      const session = sessions.get(msg.key);
      if (!session) throw new Error(`no session ${msg.key} in this worker`);
      const { outputs, startedAt, inferenceMs } = await withOwnMemory(msg.memory.bytes, (into) => timedRun(session, toTensors(msg.feeds, msg.memory, into)));
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
