import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { latencyChart } from './chart';
import { CLOSED_LOOP_CLIENTS, OPEN_LOOP_WARMUP_S, OpenLoopResult, closedLoop, openLoop } from './load';

const ROOT = join(__dirname, '..', '..');
const run = (script: string, args: string[]) =>
  promisify(execFile)(process.execPath, ['-r', '@swc-node/register', join(__dirname, script), ...args], { cwd: ROOT, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 });

const BODY = JSON.stringify({ model_id: 'stub_v1', payload: { input: [0.5, 1] } });
const ANSWER_DELAY_MS = 20;
/** Answers 200 on /ok only to a POST of exactly BODY as application/json (400 otherwise), and 503 on /busy, each after ANSWER_DELAY_MS. */
const CHECKING_SERVER = `
const body = ${JSON.stringify(BODY)};
const server = require('node:http').createServer((req, res) => {
  let got = '';
  req.on('data', (c) => (got += c));
  req.on('end', () => {
    const sent = req.method === 'POST' && req.headers['content-type'] === 'application/json' && got === body;
    res.statusCode = !sent ? 400 : req.url === '/ok' ? 200 : 503;
    setTimeout(() => res.end('{}'), ${ANSWER_DELAY_MS});
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;

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
    // The event-loop thread's own CPU per request, read from the kernel, is printed and kept.
    expect(stdout).toMatch(/Event-loop thread CPU per request \(median\): \d+\.\d\d us/);
    expect(result.saturation.mainThreadUsPerRequest).toBeGreaterThan(0);
    // Measured runs start only after at least 3 s of load, while throughput still climbs.
    expect(stdout).toMatch(/Warm-up, not counted: \d+\.\d s, [\d,]+ requests/);
    expect(result.warmup.seconds).toBeGreaterThanOrEqual(3);
  }, 150_000);

  it('bench:queue measures the queue hop alone per row at each job size, and writes its JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('queue.ts', ['--rows', '3200', '--repeats', '1', '--sizes', '1,32', '--results', dir]);
    expect(stdout).toMatch(/=== Queue hop alone: event-loop CPU per row ===\nrows\/job +us\/row +rows\/s\n +1 +\d+\.\d\d +[\d,]+\n +32 +\d+\.\d\d +[\d,]+\n/);
    const result = JSON.parse(readFileSync(join(dir, 'queue.json'), 'utf8'));
    const [one, many] = result.results;
    // Every row written was fetched and decoded (the run ends only then), in jobs of the size asked for.
    expect([one.rowsPerJob, one.rows, many.rowsPerJob, many.rows]).toEqual([1, 3200, 32, 3200]);
    // A job's Redis scripts and round trips are shared by its rows: 32 to a job cost each row far less than 1.
    expect(many.mainThreadUsPerRow).toBeLessThan(one.mainThreadUsPerRow / 4);
  }, 150_000);

  it('bench measures the gateway, the bare Fastify ceiling, the Nest stack alone, MAX_BATCH_SIZE=1 and the floor under the ratio in one run, and writes JSON and an SVG chart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('gateway.ts', ['--seconds', '1', '--repeats', '1', '--connections', '16', '--rates', '50,100', '--results', dir]);
    expect(stdout).toContain('bare Fastify (HTTP ceiling)');
    expect(stdout).toMatch(/gateway \/ ceiling: \d+\.\d\d {4}gateway \/ no batching: \d+\.\d\d {4}Nest stack \/ ceiling: \d+\.\d\d/);
    expect(stdout).toMatch(/floor: Nest stack \d+ us \+ queue hop [\d.]+ us \(32 rows per job\) x [\d.]+ of requests queued \+ batcher [\d.]+ us = [\d.]+ us per request: best gateway \/ ceiling for this design \d+\.\d\d/);
    const result = JSON.parse(readFileSync(join(dir, 'gateway-stub.json'), 'utf8'));
    // The floor adds the parts measured alone to the Nest stack's cost of this run, and sets the ceiling's against it.
    const { floor, saturation } = result;
    expect(floor.queueUsPerRow).toBeGreaterThan(0);
    expect(floor.batcherUsPerRequest).toBeGreaterThan(0);
    expect(floor.queuedShare).toBeCloseTo(1 - saturation.gateway.directShare, 2);
    expect(floor.totalUs).toBeCloseTo(saturation.framework.mainThreadUsPerRequest + floor.queueUsPerRow * floor.queuedShare + floor.batcherUsPerRequest, 0);
    expect(floor.bestRatio).toBeCloseTo(saturation.ceiling.mainThreadUsPerRequest / floor.totalUs, 1);
    // 16 connections fit in what the batched gateway keeps in hand (a batch per worker thread waiting, two running
    // or handed over), so direct dispatch takes most of its requests; without batching it keeps two or three rows
    // in hand, and the rest are queued. Jobs are counted by BullMQ's job-id counter: one queued row each without
    // batching (up to the requests still in flight at either end of the run), at most a batch with it.
    expect(saturation.gateway.directShare).toBeGreaterThan(0.5);
    expect(saturation.noBatching.directShare).toBeLessThan(saturation.gateway.directShare);
    expect(saturation.noBatching.rowsPerJob).toBeCloseTo(1, 0);
    if (saturation.gateway.rowsPerJob !== undefined) {
      expect(saturation.gateway.rowsPerJob).toBeGreaterThanOrEqual(1);
      expect(saturation.gateway.rowsPerJob).toBeLessThanOrEqual(32);
    }
    expect(stdout).toMatch(/[\d.]+ of its requests direct(, its jobs carrying [\d.]+ rows?|, no job written)\)/);
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

  it('bench:json times each image-row body through the parser, the pipe and the encoder, and writes its JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await run('json-body.ts', ['--iterations', '3', '--repeats', '1', '--results', dir]);
    for (const body of ['/infer, 5 decimals', 'V2, 5 decimals', '/infer, float32, 17 digits', 'V2, float32, 17 digits']) expect(stdout).toContain(body);
    const result = JSON.parse(readFileSync(join(dir, 'json-body.json'), 'utf8'));
    expect(result.results).toHaveLength(4);
    for (const r of result.results) for (const key of ['parseMs', 'parserMs', 'gatewayMs', 'withoutLiftingMs']) expect(r[key]).toBeGreaterThan(0);
  }, 150_000);

  describe.each(CLOSED_LOOP_CLIENTS)('closed loop with %s', (client) => {
    // A server in its own process: wrk runs synchronously and would block one in this process.
    let server: ChildProcess;
    let url: string;
    beforeAll(async () => {
      server = spawn(process.execPath, ['-e', CHECKING_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      const port = await new Promise<string>((resolve) => server.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
      url = `http://127.0.0.1:${port}`;
    });
    afterAll(() => server?.kill());

    it('sends the JSON body and counts answers and latency percentiles', async () => {
      const r = await closedLoop(`${url}/ok`, BODY, 4, 1, client);
      expect(r.requests).toBeGreaterThan(50);
      expect(r.errors).toBe(0);
      expect(r.throughput).toBeGreaterThan(50);
      // Every answer takes ANSWER_DELAY_MS, and none the whole run: a percentile misread from wrk's output (NaN) or
      // read in the wrong unit (a factor of 1,000) falls outside these bounds, under any load.
      expect(Number.isFinite(r.p99)).toBe(true);
      expect(r.p50).toBeGreaterThanOrEqual(ANSWER_DELAY_MS / 2);
      expect(r.p50).toBeLessThanOrEqual(r.p90);
      expect(r.p90).toBeLessThanOrEqual(r.p99);
      expect(r.p99).toBeLessThan(r.seconds * 1000);
    });

    it('counts non-2xx answers as errors, not throughput', async () => {
      const r = await closedLoop(`${url}/busy`, BODY, 4, 1, client);
      expect(r.requests).toBeGreaterThan(50);
      expect(r.errors).toBe(r.requests);
      expect(r.throughput).toBe(0);
    });
  });

  it('open loop: times only what follows its lead-in, so a cold start is not measured as the tail', async () => {
    // The first 60 answers take 300 ms, as new connections and cold code can; the rest come at once.
    const slowStart = `
let n = 0;
const server = require('node:http').createServer((req, res) => {
  req.resume();
  req.on('end', () => setTimeout(() => res.end('{}'), ++n <= 60 ? 300 : 0));
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
    const server = spawn(process.execPath, ['-e', slowStart], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<string>((resolve) => server.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
      const rate = 100;
      const r = await openLoop(`http://127.0.0.1:${port}/`, BODY, rate, 1);
      // The lead-in's requests are the slow ones; timed, they would be 60 of the 100 and the P99 over 300 ms.
      expect(rate * OPEN_LOOP_WARMUP_S).toBeGreaterThanOrEqual(60);
      expect([r.requests, r.errors]).toEqual([rate, 0]);
      expect(r.p99).toBeLessThan(100);
    } finally {
      server.kill();
    }
  });

  it('charts p50, p90 and p99 against offered load, with the P99 target line', () => {
    const point = (offered: number, p50: number): OpenLoopResult => ({ client: 'x', seconds: 1, requests: offered, throughput: offered, offered, p50, p90: p50 * 2, p99: p50 * 4, errors: 0 });
    const svg = latencyChart('test', [point(50, 1), point(500, 2), point(5000, 40)], 12);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(3);
    expect(svg).toContain('P99 target 12 ms');
    expect(svg).not.toContain('NaN');
  });
});
