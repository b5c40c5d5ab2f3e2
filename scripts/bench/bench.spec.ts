import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { latencyChart } from './chart';
import type { OpenLoopResult } from './load';

const ROOT = join(__dirname, '..', '..');
const run = (script: string, args: string[]) =>
  promisify(execFile)(process.execPath, ['-r', '@swc-node/register', join(__dirname, script), ...args], { cwd: ROOT, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 });

describe('benchmarks', () => {
  it('bench:batcher prints the original block, the light-load comparison, and writes its JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('batcher.ts', ['--requests', '2000', '--repeats', '1', '--results', dir]);
    expect(stdout).toMatch(
      /=== Batcher Benchmark ===\nRequests: 2,000\nElapsed: \d+\.\d\ds\nThroughput: [\d,]+ req\/s\nP50 latency: \d+\.\d\dms\nP99 latency: \d+\.\d\dms\nAvg batch size: \d+\.\d\nModel calls: \d+ \(vs 2000 individual = \d+\.\dx reduction\)\nTarget: >80,000 req\/s, P99 <5ms\nPass: (PASS|FAIL)\n/,
    );
    const result = JSON.parse(readFileSync(join(dir, 'batcher.json'), 'utf8'));
    expect(result.saturation.requests).toBe(2000);
    // Every request was run, in batches: the model calls and batch sizes account for all of them.
    expect(Math.round(result.saturation.modelCalls * result.saturation.avgBatch)).toBeGreaterThanOrEqual(1990);
    expect(result.saturation.avgBatch).toBeGreaterThan(4);
    // At 50 req/s the adaptive policy does not wait for the window; the fixed window does.
    expect(result.lightLoad.adaptive.p50).toBeLessThan(result.settings.BATCH_WINDOW_MS);
    expect(result.lightLoad.fixedWindow.p50).toBeGreaterThanOrEqual(result.settings.BATCH_WINDOW_MS);
  }, 150_000);

  it('bench measures the gateway, the bare Fastify ceiling, the Nest stack alone and MAX_BATCH_SIZE=1 in one run, and writes JSON and an SVG chart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('gateway.ts', ['--seconds', '1', '--repeats', '1', '--connections', '16', '--rates', '50,100', '--results', dir]);
    expect(stdout).toContain('bare Fastify (HTTP ceiling)');
    expect(stdout).toMatch(/gateway \/ ceiling: \d+\.\d\d {4}gateway \/ no batching: \d+\.\d\d {4}Nest stack \/ ceiling: \d+\.\d\d/);
    const result = JSON.parse(readFileSync(join(dir, 'gateway-stub.json'), 'utf8'));
    for (const role of ['ceiling', 'framework', 'gateway', 'noBatching']) {
      expect(result.saturation[role].throughput).toBeGreaterThan(0);
      expect(result.saturation[role].errors).toBe(0);
    }
    expect(result.openLoop.map((o: OpenLoopResult) => [o.offered, o.errors])).toEqual([
      [50, 0],
      [100, 0],
    ]);
    // The baselines are measured open loop at the target rate, whatever rates the gateway was given.
    for (const role of ['ceiling', 'framework']) expect(result.openLoopBaselines[role]).toMatchObject({ offered: 1000, errors: 0 });
    expect(stdout).toMatch(/<- bare Fastify \(HTTP ceiling\), same client and rate/);
    expect(existsSync(join(dir, 'latency-stub.svg'))).toBe(true);
  }, 150_000);

  it('bench:metrics measures the recording cost per request in both time units and writes its JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('metrics.ts', ['--requests', '20000', '--results', dir]);
    expect(stdout).toMatch(/loop without metrics: [\d.]+ ns per request\nwith metrics \(METRICS_TIME_UNIT=ms\): [\d.]+ ns per request/);
    const result = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    for (const unit of ['ms', 'seconds']) expect(result.results[unit].nsPerRequest).toBeGreaterThan(result.baselineNs);
  }, 150_000);

  it('charts p50, p90 and p99 against offered load, with the P99 target line', () => {
    const point = (offered: number, p50: number): OpenLoopResult => ({ client: 'x', seconds: 1, requests: offered, throughput: offered, offered, p50, p90: p50 * 2, p99: p50 * 4, errors: 0 });
    const svg = latencyChart('test', [point(50, 1), point(500, 2), point(5000, 40)], 12);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(3);
    expect(svg).toContain('P99 target 12 ms');
    expect(svg).not.toContain('NaN');
  });
});
