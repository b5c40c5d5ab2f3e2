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

    it('refuses a MODELS_DIR that does not exist, naming it', () => {
      const missing = join(tmpdir(), 'bales-repository-missing');
      expect(() => new ModelRepository(missing).folders()).toThrow(`MODELS_DIR ${missing} does not exist`);
    });

    it('serves a folder without config.json as a version 1 classifier', () => {
      const { dir, repository } = repositoryOf({ 'stub/model.onnx': 'x' });
      expect(repository.read('stub')).toEqual({ id: 'stub', path: join(dir, 'stub/model.onnx'), task: 'classification', version: 1 });
    });

    it("takes the task, labels, batch bound and version from the folder's config.json", () => {
      const config = { task: 'embedding', labels: ['a', 'b'], max_batch_size: 8, version: 3 };
      const { repository } = repositoryOf({ 'emb/model.onnx': 'x', 'emb/config.json': JSON.stringify(config) });
      expect(repository.read('emb')).toMatchObject({ task: 'embedding', labels: ['a', 'b'], maxBatchSize: 8, version: 3 });
    });

    it('refuses a config.json with an unknown task, naming the file and the tasks there are', () => {
      const { dir, repository } = repositoryOf({ 'odd/model.onnx': 'x', 'odd/config.json': '{"task":"translation"}' });
      expect(() => repository.read('odd')).toThrow(`${join(dir, 'odd/config.json')}: task must be one of classification, regression, embedding, raw`);
    });

    it('refuses a folder whose name is not a valid model id', () => {
      const { repository } = repositoryOf({ 'bad name/model.onnx': 'x' });
      expect(repository.folders()).toEqual(['bad name']);
      expect(() => repository.read('bad name')).toThrow("model folder 'bad name' is not a valid model id");
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
