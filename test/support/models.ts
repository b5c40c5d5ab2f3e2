/** The model folders tests serve: a temporary MODELS_DIR with the shipped stub, and the models the suites add to it. */
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { writeModelFolder } from '../../scripts/generate-models';
import { ElemType, GraphSpec, encodeModel, mlpClassifier, seededRandom, denseWeights } from '../../scripts/onnx/onnx-writer';
import { ROOT } from './gateway';

/** Two inputs of different types: `ids` int64 [batch, 4] and `x` float32 [batch, 4]; `sum` = float(ids) + x. */
export const multiInput: GraphSpec = {
  name: 'multi_input',
  inputs: [
    { name: 'ids', elemType: ElemType.INT64, shape: ['batch', 4] },
    { name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 4] },
  ],
  outputs: [{ name: 'sum', elemType: ElemType.FLOAT, shape: ['batch', 4] }],
  initializers: [],
  nodes: [
    { op: 'Cast', inputs: ['ids'], outputs: ['ids_f'], attributes: { to: { int: ElemType.FLOAT } } },
    { op: 'Add', inputs: ['ids_f', 'x'], outputs: ['sum'] },
  ],
};

/** A classifier whose batch dimension is fixed at 1: 8 floats in, 3 classes out. */
export function fixedBatchOne(): GraphSpec {
  const spec = mlpClassifier('fixed_one', [8, 3], 11);
  spec.inputs[0].shape = [1, 8];
  spec.outputs[0].shape = [1, 3];
  return spec;
}

/** A dynamic inner dimension: float32 [batch, seq] in, its mean [batch, 1] out. */
export const dynamicSeq: GraphSpec = {
  name: 'dynamic_seq',
  inputs: [{ name: 'tokens', elemType: ElemType.FLOAT, shape: ['batch', 'seq'] }],
  outputs: [{ name: 'mean', elemType: ElemType.FLOAT, shape: ['batch', 1] }],
  initializers: [],
  nodes: [{ op: 'ReduceMean', inputs: ['tokens'], outputs: ['mean'], attributes: { axes: { ints: [1] }, keepdims: { int: 1 } } }],
};

/** An embedder: float32 [batch, 16] to [batch, 8] through one dense layer. */
export function embedder(): GraphSpec {
  const rand = seededRandom(21);
  return {
    name: 'embedder',
    inputs: [{ name: 'features', elemType: ElemType.FLOAT, shape: ['batch', 16] }],
    outputs: [{ name: 'embedding', elemType: ElemType.FLOAT, shape: ['batch', 8] }],
    initializers: [
      { name: 'w', dims: [16, 8], values: denseWeights(rand, 16, 8) },
      { name: 'b', dims: [8], values: new Float32Array(8) },
    ],
    nodes: [{ op: 'Gemm', inputs: ['features', 'w', 'b'], outputs: ['embedding'] }],
  };
}

/** Two outputs, for the raw task: relu(x) and -x of a float32 [batch, 2, 2]. */
export const twoOutputs: GraphSpec = {
  name: 'two_outputs',
  inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2, 2] }],
  outputs: [
    { name: 'relu', elemType: ElemType.FLOAT, shape: ['batch', 2, 2] },
    { name: 'neg', elemType: ElemType.FLOAT, shape: ['batch', 2, 2] },
  ],
  initializers: [],
  nodes: [
    { op: 'Relu', inputs: ['x'], outputs: ['relu'] },
    { op: 'Neg', inputs: ['x'], outputs: ['neg'] },
  ],
};

/**
 * A classifier of the stub's shape (128 floats in, 10 classes out) made slow on purpose: one 512x512 layer applied
 * `layers` times. The file stays small (one weight matrix) while a batch costs real CPU, so a flood saturates the
 * worker threads.
 */
export function heavyClassifier(layers: number): GraphSpec {
  const spec = mlpClassifier('heavy', [128, 512, 512, 10], 7);
  const [first, firstRelu] = spec.nodes;
  const nodes = [first, firstRelu];
  let current = firstRelu.outputs[0];
  for (let i = 0; i < layers; i++) {
    nodes.push({ op: 'Gemm', inputs: [current, 'w1', 'b1'], outputs: [`r${i}`] });
    nodes.push({ op: 'Relu', inputs: [`r${i}`], outputs: [`r${i}_relu`] });
    current = `r${i}_relu`;
  }
  nodes.push({ op: 'Gemm', inputs: [current, 'w2', 'b2'], outputs: ['logits'] });
  nodes.push({ op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: { int: -1 } } });
  return { ...spec, nodes };
}

/** A float32 scalar initializer. */
const scalar = (name: string, value: number) => ({ name, dims: [], values: Float32Array.from([value]) });

/**
 * A voice-activity detector's shape: audio `input` [batch, samples] float32, the sample rate `sr` as an int64
 * scalar [], and recurrent states `h`, `c` [2, batch, 64], batched on axis 1. Outputs a score `output` [batch, 1]
 * and the new states `hn`, `cn` [2, batch, 64]; each depends on its own row's samples and states and on sr:
 *   m = mean(input) per row, s = sr / 10000
 *   hn = tanh(h * s + m), cn = c / 2 + hn, output = sigmoid(mean of hn over axes 0 and 2, + m)
 * `stateBatch` names the states' batch dimension, which an exporter may name apart from the input's.
 */
export function stateModel(stateBatch = 'batch'): GraphSpec {
  const f32 = ElemType.FLOAT;
  const state = [2, stateBatch, 64];
  return {
    name: 'state_model',
    inputs: [
      { name: 'input', elemType: f32, shape: ['batch', 'samples'] },
      { name: 'sr', elemType: ElemType.INT64, shape: [] },
      { name: 'h', elemType: f32, shape: state },
      { name: 'c', elemType: f32, shape: state },
    ],
    outputs: [
      { name: 'output', elemType: f32, shape: ['batch', 1] },
      { name: 'hn', elemType: f32, shape: state },
      { name: 'cn', elemType: f32, shape: state },
    ],
    initializers: [scalar('per_10k', 1e-4), scalar('half', 0.5), { name: 'column', dims: [2], values: BigInt64Array.from([-1n, 1n]) }],
    nodes: [
      { op: 'Cast', inputs: ['sr'], outputs: ['sr_f'], attributes: { to: { int: f32 } } },
      { op: 'Mul', inputs: ['sr_f', 'per_10k'], outputs: ['s'] },
      { op: 'ReduceMean', inputs: ['input'], outputs: ['m'], attributes: { axes: { ints: [1] }, keepdims: { int: 1 } } },
      // [batch, 1] broadcasts against [2, batch, 64]: each row's mean meets its own state.
      { op: 'Mul', inputs: ['h', 's'], outputs: ['h_s'] },
      { op: 'Add', inputs: ['h_s', 'm'], outputs: ['h_m'] },
      { op: 'Tanh', inputs: ['h_m'], outputs: ['hn'] },
      { op: 'Mul', inputs: ['c', 'half'], outputs: ['c_half'] },
      { op: 'Add', inputs: ['c_half', 'hn'], outputs: ['cn'] },
      { op: 'ReduceMean', inputs: ['hn'], outputs: ['hn_mean'], attributes: { axes: { ints: [0, 2] }, keepdims: { int: 0 } } },
      { op: 'Reshape', inputs: ['hn_mean', 'column'], outputs: ['hn_col'] },
      { op: 'Add', inputs: ['hn_col', 'm'], outputs: ['logit'] },
      { op: 'Sigmoid', inputs: ['logit'], outputs: ['output'] },
    ],
  };
}

/** A model whose output sums over the batch, so its batch axes cannot be determined: `x` [batch, 4] to `total` [4]. */
export const batchSum: GraphSpec = {
  name: 'batch_sum',
  inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 4] }],
  outputs: [{ name: 'total', elemType: ElemType.FLOAT, shape: [4] }],
  initializers: [{ name: 'sum_axes', dims: [1], values: BigInt64Array.from([0n]) }],
  nodes: [{ op: 'ReduceSum', inputs: ['x', 'sum_axes'], outputs: ['total'], attributes: { keepdims: { int: 0 } } }],
};

/** A temporary MODELS_DIR holding a copy of the shipped stub: `stub_v1/` and the v2 weights beside it. */
export function stubModelsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bales-models-'));
  cpSync(join(ROOT, 'models/stub_v1'), join(dir, 'stub_v1'), { recursive: true });
  copyFileSync(join(ROOT, 'models/stub_v2.onnx'), join(dir, 'stub_v2.onnx'));
  return dir;
}

/** Adds a model folder (`id/model.onnx` and `id/config.json`) to a MODELS_DIR, served from the next boot. */
export function addModel(dir: string, id: string, spec: GraphSpec, config: object): void {
  writeModelFolder(dir, id, encodeModel(spec), config);
}

/** A temporary MODELS_DIR serving `heavy` (see heavyClassifier) beside a copy of the stub. */
export function heavyModelsDir(layers: number): string {
  const dir = stubModelsDir();
  addModel(dir, 'heavy', heavyClassifier(layers), { task: 'classification' });
  return dir;
}

/**
 * A model repository in a temp folder: the shipped stub (and its v2 weights), one model of each shape
 * and task, loose files for registration and reload cases, and a symlink pointing outside.
 */
export function testRepository(): string {
  const dir = stubModelsDir();
  addModel(dir, 'multi_input', multiInput, { task: 'regression' });
  addModel(dir, 'fixed_one', fixedBatchOne(), { task: 'classification', labels: ['cat', 'dog', 'bird'] });
  addModel(dir, 'dynamic_seq', dynamicSeq, { task: 'regression' });
  addModel(dir, 'embedder', embedder(), { task: 'embedding' });
  addModel(dir, 'two_outputs', twoOutputs, { task: 'raw' });
  mkdirSync(join(dir, 'extra'));
  writeFileSync(join(dir, 'extra/heavy.onnx'), encodeModel(mlpClassifier('heavy', [128, 1024, 1024, 10], 7)));
  const slow = mlpClassifier('slow', [128, 1024, 1024, 10], 8);
  slow.inputs[0].shape = [1, 128];
  slow.outputs[0].shape = [1, 10];
  writeFileSync(join(dir, 'extra/slow.onnx'), encodeModel(slow));
  writeFileSync(join(dir, 'extra/wide.onnx'), encodeModel(mlpClassifier('wide', [256, 10], 9)));
  writeFileSync(join(dir, 'extra/garbage.onnx'), 'this is not an onnx file');
  const outside = mkdtempSync(join(tmpdir(), 'bales-outside-'));
  copyFileSync(join(ROOT, 'models/stub_v2.onnx'), join(outside, 'stub.onnx'));
  symlinkSync(join(outside, 'stub.onnx'), join(dir, 'extra/escape.onnx'));
  return dir;
}

/** Runs a model with ONNX Runtime directly, for comparison with what the gateway answers. */
export async function runDirect(path: string, feeds: Record<string, Tensor>): Promise<Record<string, { dims: readonly number[]; data: number[] }>> {
  const session = await InferenceSession.create(path);
  const out = await session.run(feeds);
  const result = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { dims: t.dims, data: Array.from(t.data as Float32Array, Number) }]));
  await session.release();
  return result;
}
