import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BalesConfig, loadConfig } from '@bales/config';
import { ROOT } from './support/gateway';

describe('.env.example', () => {
  const text = readFileSync(join(ROOT, '.env.example'), 'utf8');
  const entries = Object.fromEntries(
    text
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

  it('lists every setting the gateway reads, and nothing else', () => {
    expect(Object.keys(entries).sort()).toEqual(Object.keys(new BalesConfig()).sort());
  });

  it('shows the defaults: loading it gives the same configuration as an empty environment', () => {
    expect(loadConfig(entries)).toEqual(loadConfig({}));
  });
});
