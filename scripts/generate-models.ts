/**
 * Writes the shipped stub models, byte for byte the same on every run:
 *   models/stub_v1/model.onnx + config.json   (served at boot as `stub_v1`)
 *   models/stub_v2.onnx                       (same signature, other weights: the hot-swap example)
 * Usage: npm run models
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConvNetSpec, convClassifier, encodeModel, mlpClassifier } from './onnx/onnx-writer';

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

/**
 * The real-shape benchmark models (bench:shapes), generated at bench time into a scratch folder, never committed:
 * - image: [batch, 3, 48, 192] float32, a text-line crop's shape (27,648 values a row), four 3x3 convolutions,
 *   about a millisecond a row on one core;
 * - audio: [batch, 16000] float32, a second of 16 kHz samples, a strided 1-D convolution as a learned filterbank
 *   and three more, a fifth of that.
 * Both end in global average pooling and 10 or 12 class probabilities.
 */
export type ShapeModelChoice = 'image' | 'audio';

export interface ShapeModel {
  id: string;
  spec: ConvNetSpec;
  seed: number;
  description: string;
}

export const SHAPE_MODELS: Record<ShapeModelChoice, ShapeModel> = {
  image: {
    id: 'image_v1',
    spec: {
      input: [3, 48, 192],
      convs: [
        { channels: 32, kernel: 3, stride: 1, pad: 1 },
        { channels: 64, kernel: 3, stride: 2, pad: 1 },
        { channels: 96, kernel: 3, stride: 2, pad: 1 },
        { channels: 128, kernel: 3, stride: 2, pad: 1 },
      ],
      classes: 10,
    },
    seed: 4848,
    description: 'Benchmark image classifier: float32 [3, 48, 192] in, four 3x3 convolutions, 10 classes out.',
  },
  audio: {
    id: 'audio_v1',
    spec: {
      input: [16000],
      reshape: [1, 16000],
      convs: [
        { channels: 64, kernel: 400, stride: 160, pad: 0 },
        { channels: 128, kernel: 3, stride: 1, pad: 1 },
        { channels: 128, kernel: 3, stride: 2, pad: 1 },
        { channels: 256, kernel: 3, stride: 1, pad: 1 },
      ],
      classes: 12,
    },
    seed: 1600,
    description: 'Benchmark audio classifier: float32 [16000] in (1 s at 16 kHz), four 1-D convolutions, 12 classes out.',
  },
};

export function shapeModel(choice: ShapeModelChoice): Buffer {
  const { id, spec, seed } = SHAPE_MODELS[choice];
  return encodeModel(convClassifier(id, spec, seed));
}

/** Writes the chosen real-shape model as its own folder in modelsDir; returns its id. */
export function writeShapeModel(modelsDir: string, choice: ShapeModelChoice): string {
  const { id, description } = SHAPE_MODELS[choice];
  writeModelFolder(modelsDir, id, shapeModel(choice), { task: 'classification', description });
  return id;
}

if (require.main === module) {
  const dir = resolve(process.argv[2] ?? join(__dirname, '..', 'models'));
  writeStubModels(dir);
  console.log(`wrote stub_v1/model.onnx, stub_v1/config.json and stub_v2.onnx to ${dir}`);
}
