import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphSpec, encodeModel, mlpClassifier } from '../scripts/onnx/onnx-writer';
import { ROOT } from './support/gateway';

/**
 * A classifier of the stub's shape (128 floats in, 10 classes out) made slow on purpose: one 512x512 layer
 * applied `layers` times. It keeps the file small (one weight matrix) while a batch costs real CPU, so a
 * flood saturates the workers on a 2-core machine. 1024 layers: about 10 ms per row alone, 70 ms per 32.
 */
function heavyClassifier(layers: number): GraphSpec {
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

/** A temporary MODELS_DIR serving `heavy` beside a copy of the stub. */
export function heavyModelsDir(layers: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'bales-faults-'));
  mkdirSync(join(dir, 'heavy'));
  writeFileSync(join(dir, 'heavy', 'model.onnx'), encodeModel(heavyClassifier(layers)));
  writeFileSync(join(dir, 'heavy', 'config.json'), JSON.stringify({ task: 'classification' }));
  mkdirSync(join(dir, 'stub_v1'));
  for (const f of ['model.onnx', 'config.json']) copyFileSync(join(ROOT, 'models/stub_v1', f), join(dir, 'stub_v1', f));
  return dir;
}
