import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ErrorCode } from '@bales/errors';
import { ModelRepository } from './model-repository';

/** A MODELS_DIR in a temp folder; model.onnx files hold placeholder bytes, since nothing here loads them. */
function modelsDir(layout: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bales-repository-'));
  for (const [path, content] of Object.entries(layout)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

describe('ModelRepository', () => {
  const dirs: string[] = [];
  const repositoryOf = (layout: Record<string, string>) => {
    const dir = modelsDir(layout);
    dirs.push(dir);
    return { dir, repository: new ModelRepository(dir) };
  };
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  describe('model folders', () => {
    it('lists the folders holding a model.onnx, sorted, and skips loose files and folders without weights', () => {
      const { repository } = repositoryOf({ 'b/model.onnx': 'x', 'a/model.onnx': 'x', 'empty/readme.txt': 'x', 'loose.onnx': 'x' });
      expect(repository.folders()).toEqual(['a', 'b']);
    });

    it('skips a dangling link instead of failing every model', () => {
      const { dir, repository } = repositoryOf({ 'a/model.onnx': 'x' });
      symlinkSync(join(dir, 'gone'), join(dir, 'dangling'));
      expect(repository.folders()).toEqual(['a']);
    });

    it('refuses a MODELS_DIR that does not exist, naming it', () => {
      const missing = join(tmpdir(), 'bales-repository-missing');
      expect(() => new ModelRepository(missing).folders()).toThrow(`MODELS_DIR ${missing} does not exist`);
    });

    it('serves a folder without config.json as a version 1 classifier, warmed on made-up inputs', () => {
      const { dir, repository } = repositoryOf({ 'stub/model.onnx': 'x' });
      expect(repository.read('stub')).toMatchObject({ id: 'stub', path: join(dir, 'stub/model.onnx'), task: 'classification', version: 1 });
      expect(repository.read('stub')).toMatchObject({ labels: undefined, maxBatchSize: undefined, warmup: undefined });
    });

    it("takes the task, labels, batch bound and version from the folder's config.json", () => {
      const config = { task: 'embedding', labels: ['a', 'b'], max_batch_size: 8, version: 3 };
      const { repository } = repositoryOf({ 'emb/model.onnx': 'x', 'emb/config.json': JSON.stringify(config) });
      expect(repository.read('emb')).toMatchObject({ task: 'embedding', labels: ['a', 'b'], maxBatchSize: 8, version: 3 });
    });

    it('refuses a config.json with an unknown task as INVALID_MODEL, naming the file from MODELS_DIR and the tasks there are', () => {
      const { repository } = repositoryOf({ 'odd/model.onnx': 'x', 'odd/config.json': '{"task":"translation"}' });
      expect(() => repository.read('odd')).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_MODEL, message: 'odd/config.json: task must be one of classification, regression, embedding, raw' }),
      );
    });

    it.each([
      ['JSON that does not parse', '{"task": "raw",', /^odd\/config\.json: not valid JSON \(.+\)$/],
      ['a JSON value that is not an object', '["raw"]', /^odd\/config\.json: must hold a JSON object$/],
      ['labels that are not strings', '{"labels": ["a", 2]}', /^odd\/config\.json: labels must be a list of strings$/],
      ['a max_batch_size of 0', '{"max_batch_size": 0}', /^odd\/config\.json: max_batch_size must be a whole number from 1 to 4096$/],
      ['a fractional version', '{"version": 1.5}', /^odd\/config\.json: version must be a whole number from 1 to \d+$/],
    ])('refuses a config.json holding %s as INVALID_MODEL, naming the file and the field', (_case, config, message) => {
      const { repository } = repositoryOf({ 'odd/model.onnx': 'x', 'odd/config.json': config });
      expect(() => repository.read('odd')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_MODEL, message: expect.stringMatching(message) }));
    });

    it('refuses a folder whose name is not a valid model id', () => {
      const { repository } = repositoryOf({ 'bad name/model.onnx': 'x' });
      expect(repository.folders()).toEqual(['bad name']);
      expect(() => repository.read('bad name')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_MODEL, message: "model folder 'bad name' is not a valid model id" }));
    });
  });

  describe('config.json warmup', () => {
    const read = (warmup: unknown) => {
      const { repository } = repositoryOf({ 'm/model.onnx': 'x', 'm/config.json': JSON.stringify({ warmup }) });
      return repository.read('m').warmup;
    };

    it('warms up on made-up inputs when warmup is absent or true, and not at all when it is false', () => {
      expect(read(true)).toBeUndefined();
      expect(read(false)).toBe(false);
    });

    it('reads samples of zeros, random values and given values, taking a given value’s shape from its nesting or its "shape"', () => {
      const samples = [
        {
          name: 'one chunk',
          inputs: {
            input: { random: [1, 512] },
            sr: { data: 16000 },
            h: { zeros: [2, 1, 64] },
            mask: { data: [[true, false]] },
            flat: { data: [1, 2, 3, 4, 5, 6], shape: [1, 2, 3] },
          },
        },
        { inputs: { input: { zeros: [4, 512] } } },
      ];
      expect(read(samples)).toEqual([
        {
          name: 'one chunk',
          inputs: {
            input: { fill: 'random', shape: [1, 512] },
            sr: { values: [16000], shape: [] },
            h: { fill: 'zeros', shape: [2, 1, 64] },
            mask: { values: [true, false], shape: [1, 2] },
            flat: { values: [1, 2, 3, 4, 5, 6], shape: [1, 2, 3] },
          },
        },
        { inputs: { input: { fill: 'zeros', shape: [4, 512] } } },
      ]);
    });

    it.each([
      ['a string', 'zeros', 'warmup must be false, or a non-empty list of samples'],
      ['an empty list', [], 'warmup must be false, or a non-empty list of samples'],
      ['a sample that is not an object', [1], 'warmup[0] must be an object with "inputs"'],
      ['a field a sample has not', [{ inputs: { x: { zeros: [1] } }, count: 2 }], 'warmup[0].count is not a warm-up sample field; a sample has "inputs" and an optional "name"'],
      ['a name that is not a string', [{ name: 3, inputs: { x: { zeros: [1] } } }], 'warmup[0].name must be a string'],
      ['a sample without inputs', [{ name: 'x' }], 'warmup[0].inputs must be an object giving a value for each input by name'],
      ['an input of two kinds', [{ inputs: { x: { zeros: [1], random: [1] } } }], 'warmup[0].inputs.x must be one of {"zeros": shape}, {"random": shape} or {"data": values}'],
      ['an input of no kind', [{ inputs: { x: { ones: [1] } } }], 'warmup[0].inputs.x must be one of {"zeros": shape}, {"random": shape} or {"data": values}'],
      ['a shape beside zeros', [{ inputs: { x: { zeros: [1], shape: [1] } } }], 'warmup[0].inputs.x.shape is not allowed beside "zeros"'],
      ['a negative size', [{ inputs: { x: { random: [1, -1] } } }], 'warmup[0].inputs.x.random must be a shape: a list of sizes, whole numbers from 0 up'],
      ['a shape too big to build', [{ inputs: { x: { zeros: [4096, 4096, 2] } } }], 'warmup[0].inputs.x.zeros holds 33554432 values, over 16777216'],
      ['ragged data', [{ inputs: { x: { data: [[1, 2], [3]] } } }], 'warmup[0].inputs.x.data[1] has shape [1], unlike [2] before it'],
      ['data of strings', [{ inputs: { x: { data: ['a'] } } }], 'warmup[0].inputs.x.data[0] must be a number, a boolean, or nested arrays of them'],
      ['data that does not fill its shape', [{ inputs: { x: { data: [1, 2, 3], shape: [2, 2] } } }], 'warmup[0].inputs.x.data holds 3 values; shape [2, 2] takes 4'],
    ])('refuses %s, naming the field', (_case, warmup, message) => {
      expect(() => read(warmup)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_MODEL, message: `m/config.json: ${message}` }));
    });
  });

  describe('weights paths', () => {
    const layout = { 'stub/model.onnx': 'x', 'v2.onnx': 'x', 'sub/deeper.onnx': 'x' };

    it('reads a relative path from MODELS_DIR and an absolute one as it is, both inside', () => {
      const { dir, repository } = repositoryOf(layout);
      expect(repository.resolveWeights('v2.onnx')).toBe(join(dir, 'v2.onnx'));
      expect(repository.resolveWeights('sub/deeper.onnx')).toBe(join(dir, 'sub/deeper.onnx'));
      expect(repository.resolveWeights(join(dir, 'stub/model.onnx'))).toBe(join(dir, 'stub/model.onnx'));
    });

    it('reads a relative path from the working directory when it lies inside MODELS_DIR from there', () => {
      const { dir, repository } = repositoryOf(layout);
      expect(repository.resolveWeights(relative(process.cwd(), join(dir, 'v2.onnx')))).toBe(join(dir, 'v2.onnx'));
    });

    it.each([
      ['a path escaping with ../', '../../etc/passwd'],
      ['an absolute path outside', '/etc/hostname'],
      ['MODELS_DIR itself', '.'],
    ])('refuses %s as PATH_NOT_ALLOWED, naming MODELS_DIR', (_case, path) => {
      const { dir, repository } = repositoryOf(layout);
      expect(() => repository.resolveWeights(path)).toThrow(expect.objectContaining({ code: ErrorCode.PATH_NOT_ALLOWED, message: `weights_path must lie inside MODELS_DIR (${dir})` }));
    });

    it('refuses a symlink inside MODELS_DIR that points outside it', () => {
      const { dir, repository } = repositoryOf(layout);
      const elsewhere = mkdtempSync(join(tmpdir(), 'bales-outside-'));
      dirs.push(elsewhere);
      const outside = join(elsewhere, 'secret.onnx');
      writeFileSync(outside, 'x');
      symlinkSync(outside, join(dir, 'escape.onnx'));
      expect(() => repository.resolveWeights('escape.onnx')).toThrow(expect.objectContaining({ code: ErrorCode.PATH_NOT_ALLOWED }));
    });

    it('follows a symlink that stays inside MODELS_DIR to its target', () => {
      const { dir, repository } = repositoryOf(layout);
      symlinkSync(join(dir, 'v2.onnx'), join(dir, 'latest.onnx'));
      expect(repository.resolveWeights('latest.onnx')).toBe(join(dir, 'v2.onnx'));
    });

    it('answers FILE_NOT_FOUND for a missing file and for a folder', () => {
      const { repository } = repositoryOf(layout);
      expect(() => repository.resolveWeights('missing.onnx')).toThrow(expect.objectContaining({ code: ErrorCode.FILE_NOT_FOUND, message: 'weights_path missing.onnx does not exist' }));
      expect(() => repository.resolveWeights('stub')).toThrow(expect.objectContaining({ code: ErrorCode.FILE_NOT_FOUND, message: 'weights_path stub is not a file' }));
    });
  });
});
