/** Models that load in ONNX Runtime but that a made-up warm-up input may not fit, and one it cannot load. */
import { ElemType, GraphSpec } from '../../scripts/onnx/onnx-writer';

/**
 * An audio front end's reflect Pad: float32 [batch, samples] padded by one sample each side. ONNX Runtime refuses
 * fewer than 2 samples ("Pad reflect requires axis length >= 2"), so every dynamic dimension at 1 does not run.
 */
export const reflectPad: GraphSpec = {
  name: 'reflect_pad',
  inputs: [{ name: 'audio', elemType: ElemType.FLOAT, shape: ['batch', 'samples'] }],
  outputs: [{ name: 'padded', elemType: ElemType.FLOAT, shape: ['batch', 'padded_samples'] }],
  initializers: [{ name: 'pads', dims: [4], values: BigInt64Array.from([0n, 1n, 0n, 1n]) }],
  nodes: [{ op: 'Pad', inputs: ['audio', 'pads'], outputs: ['padded'], attributes: { mode: 'reflect' } }],
};

/**
 * Frames of three: float32 [batch, samples] reshaped to [batch, frames, 3], so only a multiple of 3 samples runs.
 * No made-up size (1, or the synthetic 64) is one, while a real request of 6 samples is.
 */
export const framesOfThree: GraphSpec = {
  name: 'frames_of_three',
  inputs: [{ name: 'samples', elemType: ElemType.FLOAT, shape: ['batch', 'n'] }],
  outputs: [{ name: 'frames', elemType: ElemType.FLOAT, shape: ['batch', 'f', 3] }],
  initializers: [{ name: 'frame_shape', dims: [3], values: BigInt64Array.from([0n, -1n, 3n]) }],
  nodes: [{ op: 'Reshape', inputs: ['samples', 'frame_shape'], outputs: ['frames'] }],
};

/** One value a row: float32 [batch, n] reshaped to [batch, 1], so only n = 1 runs, and the synthetic 64 does not. */
export const oneValue: GraphSpec = {
  name: 'one_value',
  inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 'n'] }],
  outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 1] }],
  initializers: [{ name: 'one', dims: [2], values: BigInt64Array.from([0n, 1n]) }],
  nodes: [{ op: 'Reshape', inputs: ['x', 'one'], outputs: ['y'] }],
};

/**
 * A voice-activity detector's inputs: an audio chunk [batch, samples], the sample rate as an int64 scalar [] and a
 * recurrent state [2, <stateBatch>, 4] batched on axis 1. Its score row is the mean of the reflect-padded chunk (2
 * samples at least) times the rate, beside the sum of the row's state, [batch, 2]: the Concat runs only when the
 * state's batch is the chunk's.
 */
export function vadLike(name: string, stateBatch: string): GraphSpec {
  return {
    name,
    inputs: [
      { name: 'audio', elemType: ElemType.FLOAT, shape: ['batch', 'samples'] },
      { name: 'sr', elemType: ElemType.INT64, shape: [] },
      { name: 'h', elemType: ElemType.FLOAT, shape: [2, stateBatch, 4] },
    ],
    outputs: [
      { name: 'score', elemType: ElemType.FLOAT, shape: ['batch', 2] },
      { name: 'hn', elemType: ElemType.FLOAT, shape: [2, stateBatch, 4] },
    ],
    initializers: [
      { name: 'pads', dims: [4], values: BigInt64Array.from([0n, 1n, 0n, 1n]) },
      { name: 'sum_axes', dims: [2], values: BigInt64Array.from([0n, 2n]) },
      { name: 'squeeze_axes', dims: [1], values: BigInt64Array.from([0n]) },
    ],
    nodes: [
      { op: 'Pad', inputs: ['audio', 'pads'], outputs: ['padded'], attributes: { mode: 'reflect' } },
      { op: 'ReduceMean', inputs: ['padded'], outputs: ['mean'], attributes: { axes: { ints: [1] }, keepdims: { int: 1 } } },
      { op: 'Cast', inputs: ['sr'], outputs: ['sr_f'], attributes: { to: { int: ElemType.FLOAT } } },
      { op: 'Mul', inputs: ['mean', 'sr_f'], outputs: ['rated'] },
      { op: 'ReduceSum', inputs: ['h', 'sum_axes'], outputs: ['h_sum'], attributes: { keepdims: { int: 1 } } },
      { op: 'Squeeze', inputs: ['h_sum', 'squeeze_axes'], outputs: ['h_row'] },
      { op: 'Concat', inputs: ['rated', 'h_row'], outputs: ['score'], attributes: { axis: { int: 1 } } },
      { op: 'Neg', inputs: ['h'], outputs: ['hn'] },
    ],
  };
}

/** The detector with its state batched under the audio's batch name. */
export const scalarRate = vadLike('scalar_rate', 'batch');

/** The detector exported with the state's batch named apart (`n`): only config.json's batch_axes tells it. */
export const stateNamedApart = vadLike('state_named_apart', 'n');

/** Gelu joined the default ONNX domain only in opset 20: stamped opset 17, ONNX Runtime has no such operator. */
export const geluAtOpset17: GraphSpec = {
  name: 'gelu_17',
  opset: 17,
  inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 4] }],
  outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 4] }],
  initializers: [],
  nodes: [{ op: 'Gelu', inputs: ['x'], outputs: ['y'] }],
};
