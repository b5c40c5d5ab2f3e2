import { ElemType, GraphSpec, seededRandom } from '../scripts/onnx/onnx-writer';
import { ownGateway, post } from './support/gateway';
import { addModel, stubModelsDir } from './support/models';

/** Answers -x for a float32 [batch, n]: every value comes back as the float32 the gateway fed ONNX Runtime. */
const echo: GraphSpec = {
  name: 'echo',
  inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 'n'] }],
  outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 'n'] }],
  initializers: [],
  nodes: [{ op: 'Neg', inputs: ['x'], outputs: ['y'] }],
};

/** The float32 ONNX Runtime must have seen for each value: JSON.parse's double, rounded once. */
const negatedFloat32 = (values: number[]) => values.map((v) => -Math.fround(v));

// Large JSON bodies have their numeric arrays read straight into float32 (LiftedArray); these requests check, through
// HTTP and ONNX Runtime, that every value arrives as JSON.parse would have given it.
describe('large JSON bodies', () => {
  const dir = stubModelsDir();
  addModel(dir, 'echo', echo, { task: 'raw' });
  const own = ownGateway({ MODELS_DIR: dir });
  const rand = seededRandom(3);
  // float32 values printed with 16 or 17 digits, as numpy's tolist() and a Float32Array give them, and a few tiny ones.
  const values = Array.from(Float32Array.from({ length: 8000 }, (_, i) => (i % 97 === 0 ? (rand() * 2 - 1) * 1e-30 : rand() * 2 - 1)));

  it('feeds the model every value of a /infer body as JSON.parse would, whatever its digits', async () => {
    const res = await post(`${own.gw.url}/infer`, { model_id: 'echo', payload: { input: values } });
    expect(res.status).toBe(200);
    expect(res.body.result.outputs.y).toEqual({ shape: [8000], data: negatedFloat32(values) });
  });

  it('feeds the model every value of a V2 body, flat or nested, and of two rows', async () => {
    const infer = (data: unknown, shape: number[]) => post(`${own.gw.url}/v2/models/echo/infer`, { inputs: [{ name: 'x', shape, datatype: 'FP32', data }] });
    const flat = await infer(values, [1, 8000]);
    const nested = await infer([values.slice(0, 4000), values.slice(4000)], [2, 4000]);
    expect(flat.status).toBe(200);
    expect(flat.body.outputs[0]).toEqual({ name: 'y', shape: [1, 8000], datatype: 'FP32', data: negatedFloat32(values) });
    expect(nested.status).toBe(200);
    expect(nested.body.outputs[0]).toEqual({ name: 'y', shape: [2, 4000], datatype: 'FP32', data: negatedFloat32(values) });
  });

  it('feeds values halfway between two float32s, which only JSON.parse can round, as it rounds them', async () => {
    const midpoints = values.map((v) => {
      const below = new Float32Array([v]);
      const above = new Float32Array(new Uint32Array([new Uint32Array(below.buffer)[0] + 1]).buffer);
      return ((below[0] + above[0]) / 2).toPrecision(17);
    });
    const res = await post(`${own.gw.url}/infer`, `{"model_id":"echo","payload":{"input":[${midpoints.join(',')}]}}`);
    expect(res.status).toBe(200);
    expect(res.body.result.outputs.y.data).toEqual(negatedFloat32(midpoints.map(Number)));
  });

  it('names the element that is wrong in a large body, as in a small one', async () => {
    const withString = `{"model_id":"echo","payload":{"input":[${values.slice(0, 5000).join(',')},"x",${values.slice(5001).join(',')}]}}`;
    const bad = await post(`${own.gw.url}/infer`, withString);
    expect(bad.status).toBe(422);
    expect(bad.body.message).toBe('payload.input[5000]: expected a finite number, got "x"');
    const ragged = await post(`${own.gw.url}/v2/models/echo/infer`, { inputs: [{ name: 'x', shape: [2, 4000], datatype: 'FP32', data: [values.slice(0, 4000), values.slice(4001)] }] });
    expect(ragged.status).toBe(400);
    expect(ragged.body.error).toBe("input 'x'[1]: ragged array, expected 4000 elements at depth 1");
  });
});
