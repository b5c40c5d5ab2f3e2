/**
 * k6 cannot be installed here, so its scripts are held to k6's published types instead: every script in k6/
 * is type-checked as JavaScript (checkJs) against @types/k6, and its options are evaluated with the k6 modules
 * stubbed, to check the scenarios and thresholds each one promises.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import ts from 'typescript';

const ROOT = join(__dirname, '..');
const K6_DIR = join(ROOT, 'k6');
const SCRIPTS = readdirSync(K6_DIR)
  .filter((f) => f.endsWith('.js'))
  .sort();

/** Type errors of k6 scripts, as `file:line message`. */
function typeErrors(files: string[]): string[] {
  const program = ts.createProgram(files, {
    allowJs: true,
    checkJs: true,
    noEmit: true,
    strict: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    allowSyntheticDefaultImports: true,
    lib: ['lib.es2020.d.ts'],
    types: ['k6'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    skipLibCheck: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName.replace(`${ROOT}/`, '')}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1} ` : '';
    return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

class FakeMetric {
  constructor(readonly name: string) {}
  add(): void {}
}

/** A script's exported `options`, evaluated with the k6 modules stubbed and the given environment in __ENV. */
function optionsOf(script: string, env: Record<string, string> = {}): any {
  const { outputText } = ts.transpileModule(readFileSync(join(K6_DIR, script), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020, esModuleInterop: true } });
  const http = { post: () => undefined, batch: () => [], setResponseCallback: () => undefined, expectedStatuses: () => undefined };
  const k6Modules: Record<string, unknown> = {
    'k6/http': { __esModule: true, default: http, ...http },
    k6: { check: () => true },
    'k6/metrics': { Trend: FakeMetric, Rate: FakeMetric, Counter: FakeMetric, Gauge: FakeMetric },
    'k6/execution': { __esModule: true, default: { scenario: { iterationInTest: 0, startTime: 0 } } },
  };
  const module = { exports: {} as Record<string, unknown> };
  runInNewContext(outputText, {
    module,
    exports: module.exports,
    require: (name: string) => {
      if (!(name in k6Modules)) throw new Error(`${script} imports ${name}, which this test does not stub`);
      return k6Modules[name];
    },
    __ENV: env,
    Date,
    Math,
    Number,
    String,
    JSON,
    Array,
  });
  return module.exports.options;
}

describe('k6 scripts', () => {
  it('ships the smoke, load, spike, priority and hotswap scripts', () => {
    expect(SCRIPTS).toEqual(expect.arrayContaining(['smoke.js', 'load.js', 'spike.js', 'priority.js', 'hotswap.js']));
  });

  it('type-check against @types/k6 with no error', () => {
    expect(typeErrors(SCRIPTS.map((f) => join(K6_DIR, f)))).toEqual([]);
  });

  it('declare their options with the k6 Options type, so scenarios and thresholds are checked too', () => {
    for (const script of SCRIPTS) {
      expect({ script, typed: /\/\*\* @type \{import\('k6\/options'\)\.Options\} \*\/\s*export const options/.test(readFileSync(join(K6_DIR, script), 'utf8')) }).toEqual({ script, typed: true });
    }
  });

  it('reject a script that misuses the k6 API: a misspelt executor, an unknown http function, a wrong metric value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-k6-'));
    const bad = join(dir, 'bad.js');
    writeFileSync(
      bad,
      `import http from 'k6/http';
import { Trend } from 'k6/metrics';
const t = new Trend('x');
/** @type {import('k6/options').Options} */
export const options = { scenarios: { s: { executor: 'constant-arrival-rte', rate: 1, duration: '1s', preAllocatedVUs: 1 } } };
export default function () {
  http.pots('http://localhost:8000/infer', '{}');
  t.add('slow');
}
`,
    );
    const errors = typeErrors([bad]);
    expect(errors.some((e) => e.includes('constant-arrival-rte'))).toBe(true);
    expect(errors.some((e) => e.includes("'pots'"))).toBe(true);
    expect(errors.some((e) => e.includes('"slow"'))).toBe(true);
  });

  it('take BASE_URL from __ENV, defaulting to http://localhost:8000', () => {
    for (const script of SCRIPTS) {
      const source = readFileSync(join(K6_DIR, script), 'utf8');
      expect({ script, baseUrl: source.includes("__ENV.BASE_URL || 'http://localhost:8000'") }).toEqual({ script, baseUrl: true });
    }
  });

  it('load.js offers a constant arrival rate from RATE, with zero failures and p99 < 12 ms as thresholds and a trend of latency_ms', () => {
    const options = optionsOf('load.js', { RATE: '750' });
    expect(options.scenarios.constant).toMatchObject({ executor: 'constant-arrival-rate', rate: 750 });
    expect(options.thresholds).toMatchObject({ http_req_failed: ['rate==0'], http_req_duration: ['p(99)<12'], latency_ms: ['p(99)<12'] });
  });

  it('spike.js ramps the arrival rate up to SPIKE_RATE and back, with only 200 or 429 allowed', () => {
    const options = optionsOf('spike.js', { SPIKE_RATE: '3000', BASE_RATE: '100' });
    const stages = options.scenarios.spike.stages.map((s: { target: number }) => s.target);
    expect(options.scenarios.spike.executor).toBe('ramping-arrival-rate');
    expect(Math.max(...stages)).toBe(3000);
    expect(stages[stages.length - 1]).toBe(100);
    expect(options.thresholds.http_req_failed).toEqual(['rate==0']);
  });

  it('priority.js saturates with priority 3 while probing every priority, with thresholds that p1 beats p3', () => {
    const options = optionsOf('priority.js');
    expect(Object.values(options.scenarios).map((s: any) => s.exec)).toEqual(['bulk', 'probe']);
    expect(Object.keys(options.thresholds)).toEqual(expect.arrayContaining(['p1_not_after_p3', 'queued_ms{priority:1}', 'latency_ms{priority:1}']));
  });

  it('hotswap.js reloads every SWAP_EVERY_S seconds under constant load, with zero failed requests as a threshold', () => {
    const options = optionsOf('hotswap.js', { SWAP_EVERY_S: '3' });
    expect(options.scenarios.swaps).toMatchObject({ executor: 'constant-arrival-rate', exec: 'swap', rate: 1, timeUnit: '3s' });
    expect(options.scenarios.traffic.executor).toBe('constant-arrival-rate');
    expect(options.thresholds['http_req_failed{scenario:traffic}']).toEqual(['rate==0']);
  });
});
