import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { ElemType, GraphSpec, encodeModel } from '../../../scripts/onnx/onnx-writer';
import { framesOfThree, geluAtOpset17, oneValue, reflectPad, scalarRate, stateNamedApart } from '../../../test/support/warm-up-models';
import { LoadFailure, type Signature, type TensorSpec, type WarmupSample } from './protocol';
import { checkInputTypes, createSession, warmUp } from './session-load';

/** Real ONNX Runtime sessions, in this thread, of models written to a temp folder. */
describe('loading a session', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bales-session-load-'));
  const sessions: InferenceSession[] = [];
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.release()));
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (name: string, bytes: Buffer | string) => {
    const path = join(dir, `${name}.onnx`);
    writeFileSync(path, bytes);
    return path;
  };
  const open = async (spec: GraphSpec) => {
    const session = await createSession(file(spec.name, encodeModel(spec)), 1);
    sessions.push(session);
    const specs = (metadata: readonly InferenceSession.ValueMetadata[]): TensorSpec[] =>
      metadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
    const signature: Signature = { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) };
    return { session, signature };
  };
  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (err: unknown) => err as LoadFailure);

  describe('telling apart why ONNX Runtime does not load a file', () => {
    it.each([
      ['a file that is not ONNX', () => 'this is not an onnx file', 'unreadable', /^Protobuf parsing failed\.$/],
      ['an empty file', () => '', 'unreadable', /ModelProto does not have a graph/],
      ['an operator this ONNX Runtime lacks', () => encodeModel(geluAtOpset17), 'unsupported', /No Op registered for Gelu with domain_version of 17/],
      ['an opset newer than it knows', () => encodeModel({ ...reflectPad, opset: 99 }), 'unsupported', /Opset 99 is under development/],
      [
        'a node reading a value nothing makes',
        () => encodeModel({ ...reflectPad, nodes: [{ op: 'Pad', inputs: ['audio', 'nowhere'], outputs: ['padded'] }], initializers: [] }),
        'invalid',
        /Node input 'nowhere' is not a graph input/,
      ],
    ])('%s', async (name, bytes, kind, detail) => {
      const err = await failure(createSession(file(name.replace(/\W+/g, '_'), bytes()), 1));
      expect(err).toBeInstanceOf(LoadFailure);
      expect(err!.kind).toBe(kind);
      expect(err!.message).toMatch(detail);
      // ONNX Runtime's own prefix repeats the path, and its C++ source location means nothing to a user.
      expect(err!.message).not.toMatch(/Load model from|onnxruntime_src/);
    });

    it('refuses an input BALES cannot build a tensor for, naming it and the types it takes', () => {
      expect(() => checkInputTypes([{ name: 'text', type: 'string', shape: ['batch'] }])).toThrow(
        expect.objectContaining({ kind: 'input_type', message: "input 'text' is string; BALES takes float32, float64, int8, uint8, int32, int64, bool" }),
      );
    });
  });

  describe('warm-up on made-up inputs', () => {
    it('gives other dynamic dimensions a size real models take: a reflect Pad that fails on 1 sample warms up', async () => {
      const { session, signature } = await open(reflectPad);
      await expect(session.run({ audio: new Tensor('float32', new Float32Array(1), [1, 1]) })).rejects.toThrow(/Pad reflect requires axis length >= 2/);
      await expect(warmUp(session, signature, undefined)).resolves.toEqual({ source: 'synthetic' });
    });

    it('gives a scalar a scalar, and the batch axis of a state tensor, found by its name, batch 1', async () => {
      const { session, signature } = await open(scalarRate);
      const wrongBatch = { audio: new Tensor('float32', new Float32Array(64), [1, 64]), sr: new Tensor('int64', BigInt64Array.from([0n]), []), h: new Tensor('float32', new Float32Array(2 * 64 * 4), [2, 64, 4]) };
      await expect(session.run(wrongBatch)).rejects.toThrow();
      await expect(warmUp(session, signature, undefined)).resolves.toEqual({ source: 'synthetic' });
    });

    it("puts the batch where config.json's batch_axes says when the dimension names do not tell it", async () => {
      const { session, signature } = await open(stateNamedApart);
      expect((await warmUp(session, signature, undefined)).warning).toMatch(/Concat.*; every dynamic dimension 1: .*Pad reflect requires axis length >= 2/);
      await expect(warmUp(session, signature, undefined, { h: 1, hn: 1 })).resolves.toEqual({ source: 'synthetic' });
    });

    it('falls back to every dynamic dimension at 1 for a model that takes only that', async () => {
      const { session, signature } = await open(oneValue);
      await expect(warmUp(session, signature, undefined)).resolves.toEqual({ source: 'synthetic' });
    });

    it('keeps a session no made-up input fits, warning with what ONNX Runtime said of each attempt', async () => {
      const { session, signature } = await open(framesOfThree);
      const report = await warmUp(session, signature, undefined);
      expect(report.source).toBe('synthetic');
      expect(report.warning).toMatch(/^no made-up input fits the model, so it is served unwarmed \(batch 1, other dynamic dimensions 64: .*Reshape.*Input shape:\{1,64\}.*; every dynamic dimension 1: .*Reshape.*Input shape:\{1,1\}.*\); config\.json "warmup" can give samples that fit$/);
      const six = await session.run({ samples: new Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 6]) });
      expect(six.frames.dims).toEqual([1, 2, 3]);
    });
  });

  describe("warm-up on config.json's samples", () => {
    const vadSample = (inputs: Partial<WarmupSample['inputs']> = {}): WarmupSample => ({
      inputs: { audio: { fill: 'random', shape: [1, 512] }, sr: { values: [16000], shape: [] }, h: { fill: 'zeros', shape: [2, 1, 4] }, ...inputs } as WarmupSample['inputs'],
    });

    it('runs every sample it is given, and nothing for warmup false', async () => {
      const { session, signature } = await open(scalarRate);
      await expect(warmUp(session, signature, [vadSample(), vadSample({ audio: { values: [1, 2, 3, 4], shape: [2, 2] }, h: { fill: 'random', shape: [2, 2, 4] } })])).resolves.toEqual({ source: 'config' });
      await expect(warmUp(session, signature, false)).resolves.toEqual({ source: 'off' });
    });

    it.each([
      ['an input left out', { sr: undefined }, "input 'sr' is missing"],
      ['an input the model does not have', { rate: { values: [1], shape: [] } }, "the model has no input 'rate'; it takes audio, sr, h"],
      ['a shape the model does not declare', { h: { fill: 'zeros', shape: [3, 1, 4] } }, "input 'h' has shape [3, 1, 4]; the model declares [2, batch, 4]"],
      ['a fraction for an int64 input', { sr: { values: [0.5], shape: [] } }, "input 'sr' is int64; 0.5 does not fit it"],
      ['a batch the state does not share', { h: { fill: 'zeros', shape: [2, 3, 4] } }, /Concat/],
    ])('fails the model, naming the sample, on %s', async (_case, inputs, message) => {
      const { session, signature } = await open(scalarRate);
      const sample = vadSample(inputs as Partial<WarmupSample['inputs']>);
      for (const [name, value] of Object.entries(sample.inputs)) if (value === undefined) delete sample.inputs[name];
      const err = await failure(warmUp(session, signature, [vadSample(), { name: 'short chunk', ...sample }]));
      expect(err).toMatchObject({ kind: 'warmup' });
      expect(err!.message).toMatch(/^config\.json warm-up sample 2 \('short chunk'\) failed: /);
      expect(err!.message).toEqual(typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message));
    });

    it("fails the model on a sample ONNX Runtime refuses to run, in ONNX Runtime's words", async () => {
      const { session, signature } = await open(reflectPad);
      const err = await failure(warmUp(session, signature, [{ inputs: { audio: { fill: 'zeros', shape: [1, 1] } } }]));
      expect(err).toMatchObject({ kind: 'warmup', message: expect.stringMatching(/^config\.json warm-up sample 1 failed: .*Pad reflect requires axis length >= 2/) });
    });

    it('checks given values against integer and bool inputs', async () => {
      const flags: GraphSpec = {
        name: 'flags',
        inputs: [
          { name: 'small', elemType: ElemType.INT8, shape: ['batch', 1] },
          { name: 'mask', elemType: ElemType.BOOL, shape: ['batch', 1] },
        ],
        outputs: [{ name: 'out', elemType: ElemType.INT8, shape: ['batch', 1] }],
        initializers: [],
        nodes: [{ op: 'Identity', inputs: ['small'], outputs: ['out'] }],
      };
      const { session, signature } = await open(flags);
      const run = (small: number, mask: number | boolean) => warmUp(session, signature, [{ inputs: { small: { values: [small], shape: [1, 1] }, mask: { values: [mask], shape: [1, 1] } } }]);
      await expect(run(-3, true)).resolves.toEqual({ source: 'config' });
      await expect(run(1, 1)).resolves.toEqual({ source: 'config' });
      await expect(run(300, true)).rejects.toThrow("input 'small' is int8; 300 does not fit it");
      await expect(run(1, 2)).rejects.toThrow("input 'mask' is bool; 2 does not fit it");
    });
  });
});
