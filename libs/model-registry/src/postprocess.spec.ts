import { postprocess } from './postprocess';

/** A [2, rows, 3] output whose value at [i, r, j] is r*100 + i*10 + j, as a state batched on axis 1 is. */
function stateOutput(rows: number) {
  const data: number[] = [];
  for (let i = 0; i < 2; i++) for (let r = 0; r < rows; r++) for (let j = 0; j < 3; j++) data.push(r * 100 + i * 10 + j);
  return { dims: [2, rows, 3], data: Float32Array.from(data) };
}

/** Row r's item of stateOutput, [2, 3], row-major. */
const stateRow = (r: number) => [0, 1].flatMap((i) => [0, 1, 2].map((j) => r * 100 + i * 10 + j));

describe('postprocess', () => {
  it('splits each output along its own batch axis into every row\'s tensor', () => {
    const outputs = { score: { dims: [3, 1], data: Float32Array.from([0.1, 0.2, 0.3]) }, hn: stateOutput(3) };
    const results = postprocess('raw', 3, outputs, { score: 0, hn: 1 });
    for (let r = 0; r < 3; r++) {
      expect(results[r]).toEqual({ outputs: { score: { shape: [1], data: [Float32Array.from([0.1, 0.2, 0.3])[r]] }, hn: { shape: [2, 3], data: stateRow(r) } } });
    }
  });

  it('answers a task from the first output along its batch axis', () => {
    const results = postprocess('regression', 2, { hn: stateOutput(2) }, { hn: 1 });
    expect(results).toEqual([{ values: stateRow(0) }, { values: stateRow(1) }]);
  });

  it('refuses an output whose batch axis does not hold one entry per row, rather than slice it wrongly', () => {
    const detections = { dims: [5, 6], data: new Float32Array(30) };
    expect(() => postprocess('raw', 2, { boxes: detections }, { boxes: 0 })).toThrow("output 'boxes' has 5 along its batch axis 0 for a batch of 2");
  });

  it('answers a row with the whole output when the model has no batch axis', () => {
    const results = postprocess('raw', 1, { total: { dims: [4], data: BigInt64Array.from([1n, 2n, 3n, 4n]) } }, { total: null });
    expect(results).toEqual([{ outputs: { total: { shape: [4], data: [1, 2, 3, 4] } } }]);
  });
});
