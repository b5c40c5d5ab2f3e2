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
