/**
 * What a session worker does to load a model: create the ONNX Runtime session, telling apart why it could not,
 * check that BALES can feed every input, and warm it up. Runs in the worker thread only.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { batchLayout, type BatchLayout } from './batch-axes';
import { LoadFailure, TYPED_ARRAYS, type ElementType, type LoadFailureKind, type Signature, type TensorSpec, type WarmupInput, type WarmupReport, type WarmupSample, type WarmupSetting } from './protocol';

/**
 * The size a made-up input gives each dynamic dimension but the batch: enough for the windows, kernels and pads
 * of common sequence, audio and image models (a reflect Pad needs 2, a 7-wide convolution 7), and still a cheap run.
 */
export const SYNTHETIC_DIM = 64;

// A warm-up failure reaches the log as the gateway's own warning or reason, not as ONNX Runtime's error line too.
const QUIET: InferenceSession.RunOptions = { logSeverityLevel: 4 };

/** ONNX Runtime's words for a file it cannot parse, and for an operator, opset or IR version it does not implement. */
const UNREADABLE = /protobuf parsing failed|does not have a graph|file doesn't exist|no such file/i;
const UNSUPPORTED = /no op registered for|could not find an implementation for|not a registered function\/op|\bopset\b|unsupported model ir version/i;

/** ONNX Runtime's message on one line, without the path it repeats and the C++ functions it names. */
function ortWords(err: unknown): string {
  return (err instanceof Error ? err.message : String(err))
    .replace(/^(?:Error: )?Load model from .*? failed:/s, '')
    .replace(/^Error: /, '')
    .replace(/\/onnxruntime_src\/\S+:\d+ [^(]*\([^)]*\) /g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

export async function createSession(path: string, intraOpThreads: number): Promise<InferenceSession> {
  try {
    return await InferenceSession.create(path, { intraOpNumThreads: intraOpThreads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  } catch (err) {
    const detail = ortWords(err);
    const kind: LoadFailureKind = UNREADABLE.test(detail) ? 'unreadable' : UNSUPPORTED.test(detail) ? 'unsupported' : 'invalid';
    throw new LoadFailure(kind, detail);
  }
}

/** Refuses a model with an input BALES cannot build a tensor for (strings, float16, ...). */
export function checkInputTypes(inputs: TensorSpec[]): void {
  const odd = inputs.find((spec) => !(spec.type in TYPED_ARRAYS));
  if (odd) throw new LoadFailure('input_type', `input '${odd.name}' is ${odd.type}; BALES takes ${Object.keys(TYPED_ARRAYS).join(', ')}`);
}

/**
 * Runs the config.json samples (a failure is the model's: LoadFailure 'warmup'), or made-up inputs (a failure is
 * only the gateway's guess: the session is kept, unwarmed, with a warning), or nothing for `"warmup": false`.
 * `batchAxes` is config.json's batch_axes, which places the batch of made-up inputs.
 */
export async function warmUp(session: InferenceSession, signature: Signature, setting: WarmupSetting, batchAxes?: unknown): Promise<WarmupReport> {
  if (setting === false) return { source: 'off' };
  if (setting === undefined) return syntheticWarmUp(session, signature, batchAxes);
  for (const [i, sample] of setting.entries()) {
    try {
      await session.run(sampleFeeds(signature.inputs, sample), QUIET);
    } catch (err) {
      throw new LoadFailure('warmup', `config.json warm-up sample ${i + 1}${sample.name ? ` ('${sample.name}')` : ''} failed: ${ortWords(err)}`);
    }
  }
  return { source: 'config' };
}

/**
 * Tries batch 1 with the other dynamic dimensions at SYNTHETIC_DIM, then every dynamic dimension at 1: the
 * second fits models that bound a dynamic dimension below SYNTHETIC_DIM.
 */
async function syntheticWarmUp(session: InferenceSession, signature: Signature, batchAxes: unknown): Promise<WarmupReport> {
  const axes = inputBatchAxes(signature, batchAxes);
  const failures: string[] = [];
  for (const other of [SYNTHETIC_DIM, 1]) {
    try {
      await session.run(syntheticFeeds(signature.inputs, axes, other), QUIET);
      return { source: 'synthetic' };
    } catch (err) {
      failures.push(`${other === 1 ? 'every dynamic dimension 1' : `batch 1, other dynamic dimensions ${other}`}: ${ortWords(err)}`);
    }
  }
  return { source: 'synthetic', warning: `no made-up input fits the model, so it is served unwarmed (${failures.join('; ')}); config.json "warmup" can give samples that fit` };
}

const isDynamic = (d: number | string | undefined) => typeof d === 'string' || (typeof d === 'number' && d < 0);

/**
 * Each input's batch axis, as the gateway batches it (batch-axes.ts): config.json's batch_axes, else where the batch
 * dimension's name sits, e.g. axis 1 of a state [2, batch, 64]. A model without batch axes gets its guess on a
 * dynamic first dimension.
 */
function inputBatchAxes(signature: Signature, override: unknown): (number | null)[] {
  let layout: BatchLayout;
  try {
    layout = batchLayout(signature, override);
  } catch {
    // A batch_axes that does not fit fails the load once the session is up, naming what is wrong; the guess goes on without it.
    layout = batchLayout(signature);
  }
  return layout.unbatched ? signature.inputs.map((s) => (isDynamic(s.shape[0]) ? 0 : null)) : layout.inputs;
}

/** Zeros for every input: 1 along its batch axis, `other` along its other dynamic dimensions. */
function syntheticFeeds(inputs: TensorSpec[], batchAxes: (number | null)[], other: number): Record<string, Tensor> {
  return Object.fromEntries(
    inputs.map((spec, i) => {
      const dims = spec.shape.map((d, axis) => (!isDynamic(d) ? (d as number) : axis === batchAxes[i] ? 1 : other));
      return [spec.name, tensorOf(spec, { shape: dims, fill: 'zeros' })];
    }),
  );
}

/** A config.json sample as feeds, checked against the model's inputs so that a mismatch names the input. */
function sampleFeeds(inputs: TensorSpec[], sample: WarmupSample): Record<string, Tensor> {
  const unknown = Object.keys(sample.inputs).find((name) => !inputs.some((s) => s.name === name));
  if (unknown !== undefined) throw new Error(`the model has no input '${unknown}'; it takes ${inputs.map((s) => s.name).join(', ')}`);
  return Object.fromEntries(
    inputs.map((spec) => {
      const given = sample.inputs[spec.name];
      if (!given) throw new Error(`input '${spec.name}' is missing`);
      const fits = given.shape.length === spec.shape.length && spec.shape.every((d, i) => typeof d !== 'number' || d < 0 || d === given.shape[i]);
      if (!fits) throw new Error(`input '${spec.name}' has shape [${given.shape.join(', ')}]; the model declares [${spec.shape.map((d) => (d === '' ? '?' : d)).join(', ')}]`);
      return [spec.name, tensorOf(spec, given)];
    }),
  );
}

function tensorOf(spec: TensorSpec, input: WarmupInput): Tensor {
  const type = spec.type as ElementType;
  const size = input.shape.reduce((a, b) => a * b, 1);
  const data = new TYPED_ARRAYS[type](size);
  const integral = type !== 'float32' && type !== 'float64';
  const set = (i: number, v: number) => {
    if (type === 'int64') (data as BigInt64Array)[i] = BigInt(v);
    else (data as Exclude<typeof data, BigInt64Array>)[i] = v;
  };
  if ('values' in input) {
    input.values.forEach((raw, i) => {
      const v = Number(raw);
      if (!integral || Number.isSafeInteger(v)) set(i, v);
      // An integer that wraps around in its typed array reads back as another number.
      const fits = !integral || (Number.isSafeInteger(v) && Number(data[i]) === v && (type !== 'bool' || v <= 1));
      if (!fits) throw new Error(`input '${spec.name}' is ${type}; ${raw} does not fit it`);
    });
  } else if (input.fill === 'random') {
    // Integers are 0 or 1, which every index, mask or flag input takes.
    for (let i = 0; i < size; i++) set(i, integral ? Math.round(Math.random()) : Math.random());
  }
  return new Tensor(type, data as never, input.shape);
}
