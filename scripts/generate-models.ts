/**
 * Writes the shipped stub models, byte for byte the same on every run:
 *   models/stub_v1/model.onnx + config.json   (served at boot as `stub_v1`)
 *   models/stub_v2.onnx                       (same signature, other weights: the hot-swap example)
 * Usage: npm run models
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encodeModel, mlpClassifier } from './onnx/onnx-writer';

/** 128 float32 in, 10 class probabilities out, with a dynamic batch dimension. */
export const STUB_LAYERS = [128, 64, 10];

export function stubModel(version: 1 | 2): Buffer {
  return encodeModel(mlpClassifier(`stub_v${version}`, STUB_LAYERS, version === 1 ? 1234 : 5678));
}

/** Writes a model folder as the registry finds it at boot: `id/model.onnx` beside `id/config.json`. */
export function writeModelFolder(modelsDir: string, id: string, onnx: Uint8Array, config: object): void {
  mkdirSync(join(modelsDir, id), { recursive: true });
  writeFileSync(join(modelsDir, id, 'model.onnx'), onnx);
  writeFileSync(join(modelsDir, id, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

export function writeStubModels(modelsDir: string): void {
  writeModelFolder(modelsDir, 'stub_v1', stubModel(1), { task: 'classification', description: 'Stub classifier: 128 float32 in, 10 classes out.' });
  writeFileSync(join(modelsDir, 'stub_v2.onnx'), stubModel(2));
}

/**
 * The compute-bound benchmark model: about 2.2 M weights (9 MB), so inference, not HTTP, dominates and
 * batching shows. Generated at bench time into a scratch folder, never committed.
 */
export const HEAVY_LAYERS = [128, 1024, 1024, 1024, 10];
export const HEAVY_MODEL_ID = 'heavy_v1';

export function writeHeavyModel(modelsDir: string): void {
  writeModelFolder(modelsDir, HEAVY_MODEL_ID, encodeModel(mlpClassifier(HEAVY_MODEL_ID, HEAVY_LAYERS, 4321)), {
    task: 'classification',
    description: 'Benchmark MLP 128-1024-1024-1024-10, compute-bound.',
  });
}

if (require.main === module) {
  const dir = resolve(process.argv[2] ?? join(__dirname, '..', 'models'));
  writeStubModels(dir);
  console.log(`wrote stub_v1/model.onnx, stub_v1/config.json and stub_v2.onnx to ${dir}`);
}
