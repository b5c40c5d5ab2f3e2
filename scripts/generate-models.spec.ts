import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeStubModels } from './generate-models';

describe('generate-models', () => {
  it('regenerates the committed stub models byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-models-'));
    writeStubModels(dir);
    const repo = join(__dirname, '..', 'models');
    for (const file of ['stub_v1/model.onnx', 'stub_v1/config.json', 'stub_v2.onnx']) {
      expect(readFileSync(join(dir, file)).equals(readFileSync(join(repo, file)))).toBe(true);
    }
  });
});
