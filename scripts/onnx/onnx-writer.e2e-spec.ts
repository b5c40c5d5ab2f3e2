import { InferenceSession, Tensor } from 'onnxruntime-node';
import { SHAPE_MODELS, ShapeModelChoice, shapeModel } from '../generate-models';
import { AttributeValue, ElemType, convClassifier, encodeModel } from './onnx-writer';

/** A graph of one Conv over a [1, 1, 3, 4] input, with the given weights [out, 1, kh, kw] and attributes. */
function convOnly(weights: number[], kernel: [number, number], bias: number[], attributes: Record<string, AttributeValue>): Buffer {
  return encodeModel({
    name: 'conv_only',
    inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: [1, 1, 3, 4] }],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['n', 'c', 'h', 'w'] }],
    initializers: [
      { name: 'w', dims: [bias.length, 1, ...kernel], values: Float32Array.from(weights) },
      { name: 'b', dims: [bias.length], values: Float32Array.from(bias) },
    ],
    nodes: [{ op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['y'], attributes: { kernel_shape: { ints: kernel }, ...attributes } }],
  });
}

// 1  2  3  4
// 5  6  7  8
// 9 10 11 12
const X = new Tensor('float32', Float32Array.from({ length: 12 }, (_, i) => i + 1), [1, 1, 3, 4]);

async function run(model: Buffer, feeds: Record<string, Tensor>): Promise<Tensor> {
  const session = await InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    return Object.values(await session.run(feeds))[0];
  } finally {
    await session.release();
  }
}

describe('the ONNX writer, read back by ONNX Runtime', () => {
  it('writes Conv with pads and strides as ONNX Runtime reads them', async () => {
    // Channel 0 sums each padded 3x3 window, channel 1 picks its centre and adds 0.5; a stride of 2 keeps
    // the windows centred on (0,0), (0,2), (2,0) and (2,2).
    const y = await run(convOnly([...Array(9).fill(1), 0, 0, 0, 0, 1, 0, 0, 0, 0], [3, 3], [0, 0.5], { pads: { ints: [1, 1, 1, 1] }, strides: { ints: [2, 2] } }), { x: X });
    expect(y.dims).toEqual([1, 2, 2, 2]);
    expect(Array.from(y.data as Float32Array)).toEqual([1 + 2 + 5 + 6, 2 + 3 + 4 + 6 + 7 + 8, 5 + 6 + 9 + 10, 6 + 7 + 8 + 10 + 11 + 12, 1.5, 3.5, 9.5, 11.5]);
  });

  it('keeps the order of strides (height, width) and of pads (top, left, bottom, right)', async () => {
    const strided = await run(convOnly([1], [1, 1], [0], { strides: { ints: [2, 3] } }), { x: X });
    expect(strided.dims).toEqual([1, 1, 2, 2]);
    expect(Array.from(strided.data as Float32Array)).toEqual([1, 4, 9, 12]);

    const padded = await run(convOnly([1], [1, 1], [0], { pads: { ints: [1, 0, 0, 2] } }), { x: X });
    expect(padded.dims).toEqual([1, 1, 4, 6]);
    expect(Array.from(padded.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12, 0, 0]);
  });

  it('builds a 1-D ConvNet behind a Reshape that keeps the batch dimension', async () => {
    const model = encodeModel(convClassifier('tiny', { input: [8], reshape: [1, 8], convs: [{ channels: 2, kernel: 3, stride: 2, pad: 1 }], classes: 3 }, 1));
    const y = await run(model, { input: new Tensor('float32', new Float32Array(5 * 8).fill(1), [5, 8]) });
    expect(y.dims).toEqual([5, 3]);
    const row = Array.from((y.data as Float32Array).subarray(0, 3));
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  describe.each(Object.keys(SHAPE_MODELS) as ShapeModelChoice[])('the %s benchmark model', (choice) => {
    const model = SHAPE_MODELS[choice];
    let session: InferenceSession;
    beforeAll(async () => {
      session = await InferenceSession.create(shapeModel(choice), { intraOpNumThreads: 1 });
    });
    afterAll(() => session?.release());

    it('takes float32 rows of its shape with a dynamic batch and answers class probabilities', async () => {
      const [input] = session.inputMetadata;
      const [output] = session.outputMetadata;
      expect(input).toMatchObject({ name: 'input', isTensor: true, type: 'float32', shape: ['batch', ...model.spec.input] });
      expect(output).toMatchObject({ name: 'probabilities', isTensor: true, type: 'float32', shape: ['batch', model.spec.classes] });

      const size = model.spec.input.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: 2 * size }, (_, i) => Math.sin(i));
      const { probabilities } = await session.run({ input: new Tensor('float32', data, [2, ...model.spec.input]) });
      expect(probabilities.dims).toEqual([2, model.spec.classes]);
      const values = Array.from(probabilities.data as Float32Array);
      expect(values.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
      expect(values.slice(0, model.spec.classes).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    });
  });

  it('writes the benchmark models byte for byte the same on every run', () => {
    for (const choice of Object.keys(SHAPE_MODELS) as ShapeModelChoice[]) expect(shapeModel(choice).equals(shapeModel(choice))).toBe(true);
  });
});
