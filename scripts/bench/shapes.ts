/**
 * npm run bench:shapes [-- --model image|audio --seconds 5 --repeats 3 --connections 16 --batches 1,8,16,32 --client wrk|autocannon]
 *
 * Real input shapes, in one run on the same cores:
 * - the limit: ONNX Runtime called directly in this process, one session with as many intra-op threads as cores,
 *   at the best of the batch sizes tried;
 * - the gateway (its own process, a throwaway Redis) closed loop through POST /infer with nested JSON,
 *   POST /v2/models/{m}/infer with flat JSON, and, when the gateway takes it, the V2 binary tensor extension;
 * each path's rows/s as a ratio to the limit. Paths are interleaved `repeats` times and medians reported.
 * Writes bench-results/shapes-<model>.json.
 */
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { loadConfig } from '@bales/config';
import { TestRedis } from '../../test/support/redis-server';
import { SHAPE_MODELS, ShapeModelChoice, writeShapeModel } from '../generate-models';
import { seededRandom } from '../onnx/onnx-writer';
import { ROOT, argValue, machine, median, percentile, round, thousands, writeResult } from './common';
import { CLOSED_LOOP_CLIENTS, ClosedLoopClient, LoadResult, closedLoop, defaultClient, hasWrk } from './load';
import { Server, cpuSeconds, machineTicks, startGateway, threadCpuSeconds } from './processes';

type GatewayPath = 'inferJson' | 'v2Json' | 'v2Binary';

const PATH_NAMES: Record<GatewayPath, string> = {
  inferJson: 'POST /infer, JSON',
  v2Json: 'POST /v2/.../infer, JSON',
  v2Binary: 'POST /v2/.../infer, binary',
};

interface PathRun {
  rowsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU time of the gateway's event-loop thread per answered request, in ms (gateway paths only). */
  mainThreadMsPerRow?: number;
  /**
   * CPU per row, in core-ms, by where it went: for the gateway paths its event-loop thread, its session workers
   * (running ONNX Runtime), its other threads (V8's GC helpers, libuv), Redis, and the client with this process; for
   * direct ONNX Runtime, this process alone.
   */
  coreMs?: Record<string, number>;
  /** Cores that processes other than this benchmark's (this one, its client, the gateway, Redis) kept busy meanwhile. */
  otherCores?: number;
}

/**
 * Median time of JSON.parse of one body alone, in this process: the baseline the gateway's event-loop time per
 * JSON request is held to (at most 3x). Wall time on this thread, as the gateway's figure is its event-loop thread's
 * alone: the process's CPU would add the garbage collector's helper threads. Measured in every repeat, beside the
 * paths it is compared with, since the host's speed drifts within a run.
 */
function jsonParseMs(body: string, times = 40): number {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    JSON.parse(body);
    ms.push(performance.now() - started);
  }
  return median(ms);
}

/** The gateway's event-loop CPU per JSON request, as a multiple of JSON.parse of the body alone. */
const PARSE_TARGET = 3;

/** Other processes' load (cores, median per path) above which the run says its figures are disturbed. */
const BUSY_CORES = 0.2;

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const pad = (s: string | number, n: number) => String(s).padStart(n);
const fmtMs = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n.toFixed(2) : '-');
const kb = (bytes: number) => `${thousands(bytes / 1024)} KB`;

function shapeArg(): ShapeModelChoice {
  const model = argValue('model') ?? 'image';
  if (!(model in SHAPE_MODELS)) throw new Error(`--model must be one of ${Object.keys(SHAPE_MODELS).join(', ')}, not ${model}`);
  return model as ShapeModelChoice;
}

/**
 * One row of input: seeded values in [0, 1) to 5 decimals, as a client would send normalised pixels or samples;
 * as numbers for the JSON bodies and as the float32 the gateway makes of them.
 */
function sampleRow(size: number): { values: number[]; float32: Float32Array } {
  const rand = seededRandom(2024);
  const values = Array.from({ length: size }, () => Math.round(rand() * 1e5) / 1e5);
  return { values, float32: Float32Array.from(values) };
}

/**
 * Waits until the gateway has finished the requests a closed-loop run left in flight (its CPU falls near idle),
 * so they do not run into the next measurement. Gives up after 20 s.
 */
async function settle(pid: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const before = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 250));
    if (cpuSeconds(pid) - before < 0.025 || Date.now() > deadline) return;
  }
}

/** Row-major values nested to `shape`, as `/infer` clients usually send an image. */
export function nest(values: number[], shape: number[]): unknown[] {
  if (shape.length === 1) return values;
  const step = values.length / shape[0];
  return Array.from({ length: shape[0] }, (_, i) => nest(values.slice(i * step, (i + 1) * step), shape.slice(1)));
}

/** A V2 binary-extension request: the JSON header, then the row's raw little-endian float32 bytes. */
export function binaryRequest(row: Float32Array, shape: number[]): { body: Buffer; headerLength: number } {
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, ...shape], datatype: 'FP32', parameters: { binary_data_size: row.byteLength } }] }));
  return { body: Buffer.concat([header, Buffer.from(row.buffer, row.byteOffset, row.byteLength)]), headerLength: header.length };
}

/** Closed loop with a binary body and extra headers, on the same client as the JSON paths. */
export async function closedLoopRaw(url: string, body: Buffer, headers: Record<string, string>, connections: number, seconds: number, client: ClosedLoopClient): Promise<LoadResult> {
  if (client === 'autocannon') {
    const r = await autocannon({ url, method: 'POST', body, headers, connections, duration: seconds });
    return { client, seconds: r.duration, requests: r['2xx'] + r.non2xx, throughput: round(r['2xx'] / r.duration, 0), p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, errors: r.non2xx + r.errors };
  }
  // wrk takes a body only from Lua; a binary one is read from a file, and done() prints the figures as JSON.
  const dir = mkdtempSync(join(tmpdir(), 'bales-wrk-'));
  writeFileSync(join(dir, 'body.bin'), body);
  const setHeaders = Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  const script = [
    'wrk.method = "POST"',
    ...setHeaders,
    `local f = assert(io.open(${JSON.stringify(join(dir, 'body.bin'))}, "rb"))`,
    'wrk.body = f:read("*a")',
    'f:close()',
    'done = function(s, latency)',
    '  local e = s.errors',
    '  io.write(string.format("\\nRESULT {\\"requests\\":%d,\\"status\\":%d,\\"socket\\":%d,\\"us\\":%d,\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d}\\n",',
    '    s.requests, e.status, e.connect + e.read + e.write + e.timeout, s.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99)))',
    'end',
  ].join('\n');
  writeFileSync(join(dir, 'post.lua'), script);
  const out = execFileSync('wrk', ['-t', '2', '-c', String(connections), '-d', `${seconds}s`, '-s', join(dir, 'post.lua'), url], { encoding: 'utf8' });
  const r = JSON.parse(/^RESULT (.*)$/m.exec(out)![1]) as { requests: number; status: number; socket: number; us: number; p50: number; p90: number; p99: number };
  const secs = r.us / 1e6;
  return { client: 'wrk', seconds: round(secs, 2), requests: r.requests, throughput: round((r.requests - r.status) / secs, 0), p50: r.p50 / 1000, p90: r.p90 / 1000, p99: r.p99 / 1000, errors: r.status + r.socket };
}

/** Runs the session on one batch for `seconds`, back to back: rows/s, and each run's latency. */
async function direct(session: InferenceSession, row: Float32Array, shape: number[], batch: number, seconds: number): Promise<PathRun> {
  const data = new Float32Array(batch * row.length);
  for (let b = 0; b < batch; b++) data.set(row, b * row.length);
  const feeds = { input: new Tensor('float32', data, [batch, ...shape]) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const times: number[] = [];
  const cpuBefore = cpuSeconds(process.pid);
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const t = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t);
  }
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(times).sort();
  const rows = times.length * batch;
  const coreMs = { 'ONNX Runtime': round(((cpuSeconds(process.pid) - cpuBefore) * 1000) / rows, 3) };
  return { rowsPerSecond: round(rows / elapsed, 0), p50: round(percentile(sorted, 50), 2), p99: round(percentile(sorted, 99), 2), errors: 0, coreMs };
}

/**
 * The gateway's own layout called directly: one worker thread per core, each with a single-threaded session, all
 * running the same batch back to back. Not the limit the targets name (one session using every core), but where
 * two single-threaded sessions outrun it, the gateway can come nearer the limit than its overhead alone suggests.
 */
const PER_CORE_WORKER = `
  const { parentPort } = require('node:worker_threads');
  const { InferenceSession, Tensor } = require('onnxruntime-node');
  let session;
  let feeds;
  parentPort.on('message', async (m) => {
    if (m.op === 'load') session = await InferenceSession.create(m.path, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
    if (m.op === 'prepare') {
      const data = new Float32Array(m.batch * m.row.length);
      for (let b = 0; b < m.batch; b++) data.set(m.row, b * m.row.length);
      feeds = { input: new Tensor('float32', data, [m.batch, ...m.shape]) };
      for (let i = 0; i < 2; i++) await session.run(feeds);
    }
    let runs = 0;
    const started = performance.now();
    if (m.op === 'go') while (performance.now() - started < m.seconds * 1000) { await session.run(feeds); runs++; }
    parentPort.postMessage({ runs, elapsed: (performance.now() - started) / 1000 });
  });
`;

class PerCoreSessions {
  private constructor(private readonly threads: Worker[]) {}

  static async load(path: string, cores: number): Promise<PerCoreSessions> {
    const pool = new PerCoreSessions(Array.from({ length: cores }, () => new Worker(PER_CORE_WORKER, { eval: true })));
    await pool.all({ op: 'load', path });
    return pool;
  }

  /** Every thread runs `batch` rows back to back for `seconds`: rows/s over all threads, and CPU per row. */
  async run(row: Float32Array, shape: number[], batch: number, seconds: number): Promise<PathRun> {
    await this.all({ op: 'prepare', row, shape, batch });
    const cpuBefore = cpuSeconds(process.pid);
    const replies = await this.all({ op: 'go', seconds });
    const rows = replies.reduce((n, r) => n + r.runs * batch, 0);
    const elapsed = Math.max(...replies.map((r) => r.elapsed));
    const coreMs = { 'ONNX Runtime': round(((cpuSeconds(process.pid) - cpuBefore) * 1000) / rows, 3) };
    return { rowsPerSecond: round(rows / elapsed, 0), p50: NaN, p99: NaN, errors: 0, coreMs };
  }

  close(): Promise<number[]> {
    return Promise.all(this.threads.map((t) => t.terminate()));
  }

  /** Sends every thread the message and waits for each one's answer; events.once rejects on a thread's error. */
  private all(message: object): Promise<{ runs: number; elapsed: number }[]> {
    return Promise.all(
      this.threads.map(async (t) => {
        const answer = once(t, 'message');
        t.postMessage(message);
        return (await answer)[0] as { runs: number; elapsed: number };
      }),
    );
  }
}

/**
 * CPU seconds a gateway path took on the event loop (the thread whose id is the process's) and on the session
 * workers, taken as the `workers` busiest other threads: nothing else in the gateway comes near them under load.
 */
function splitThreads(pid: number, before: Map<number, number>, after: Map<number, number>, workers: number): { mainThread: number; sessionWorkers: number } {
  const used = [...after].map(([tid, seconds]) => ({ tid, seconds: seconds - (before.get(tid) ?? 0) }));
  const others = used.filter((t) => t.tid !== pid).sort((a, b) => b.seconds - a.seconds);
  return { mainThread: used.find((t) => t.tid === pid)?.seconds ?? NaN, sessionWorkers: others.slice(0, workers).reduce((n, t) => n + t.seconds, 0) };
}

function commit(): string {
  try {
    // -dirty when the working tree differs from the commit.
    return execFileSync('git', ['--no-optional-locks', 'describe', '--always', '--dirty', '--abbrev=7'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const choice = shapeArg();
  const model = SHAPE_MODELS[choice];
  const seconds = Number(argValue('seconds') ?? 5);
  const repeats = Number(argValue('repeats') ?? 3);
  const connections = Number(argValue('connections') ?? 16);
  const batches = (argValue('batches') ?? '1,8,16,32').split(',').map(Number);
  const client = (argValue('client') ?? defaultClient()) as ClosedLoopClient;
  if (!CLOSED_LOOP_CLIENTS.includes(client)) throw new Error(`--client must be one of ${CLOSED_LOOP_CLIENTS.join(', ')}`);
  if (client === 'wrk' && !hasWrk()) throw new Error('--client wrk: wrk is not installed (Debian: apt-get install wrk)');
  const { cores } = machine();
  // The gateway's worker threads, as it counts them: THREAD_POOL_SIZE from this environment, or one per core.
  const workerThreads = loadConfig({ ...process.env, LOG_LEVEL: 'warn' }).THREAD_POOL_SIZE;

  const modelsDir = join(tmpdir(), `bales-bench-${choice}`);
  writeShapeModel(modelsDir, choice);
  const shape = model.spec.input;
  const { values, float32: row } = sampleRow(shape.reduce((a, b) => a * b, 1));
  const bodies = {
    inferJson: JSON.stringify({ model_id: model.id, payload: { input: nest(values, shape) } }),
    v2Json: JSON.stringify({ inputs: [{ name: 'input', shape: [1, ...shape], datatype: 'FP32', data: values }] }),
    v2Binary: binaryRequest(row, shape),
  };
  const input = `[N, ${shape.join(', ')}] float32 (${thousands(row.length)} values a row)`;
  log(`model ${model.id}, input ${input}; /infer body ${kb(bodies.inferJson.length)} nested JSON, V2 ${kb(bodies.v2Json.length)} JSON or ${kb(bodies.v2Binary.body.length)} binary; ${cores} cores shared with the client (${client})`);

  // The limit: nothing between the caller and ONNX Runtime, with the whole machine's cores for one session.
  const session = await InferenceSession.create(join(modelsDir, model.id, 'model.onnx'), { intraOpNumThreads: cores, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const perCore = await PerCoreSessions.load(join(modelsDir, model.id, 'model.onnx'), cores);
  const redis = await TestRedis.start();
  let gateway: Server | undefined;
  try {
    log('starting the gateway');
    gateway = await startGateway('gateway', { REDIS_URL: redis.url, MODELS_DIR: modelsDir, DEFAULT_MODEL_ID: model.id, MAX_BODY_BYTES: '8388608', QUEUE_PREFIX: 'bench-shapes' }, bodies.inferJson);
    const gw = gateway;
    const v2Url = `${gw.url}/v2/models/${model.id}/infer`;
    const binaryHeaders = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(bodies.v2Binary.headerLength) };

    const v2 = await fetch(v2Url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies.v2Json });
    if (v2.status !== 200) throw new Error(`V2 JSON answered ${v2.status}: ${await v2.text()}`);
    await v2.arrayBuffer();
    // The binary extension is measured only where the gateway has it: one request decides.
    const probe = await fetch(v2Url, { method: 'POST', headers: binaryHeaders, body: bodies.v2Binary.body });
    const probeText = await probe.text();
    let binaryNote: string | undefined;
    if (probe.status !== 200) binaryNote = `V2 binary not measured: the gateway answered ${probe.status} (${probeText.slice(0, 200)})`;
    else if ((JSON.parse(probeText) as { outputs?: { data?: unknown[] }[] }).outputs?.[0]?.data?.length !== model.spec.classes) binaryNote = `V2 binary not measured: unexpected answer ${probeText.slice(0, 200)}`;
    if (binaryNote) log(binaryNote);

    // What else the machine ran meanwhile: the limit and the ratios are steadiest when that is near 0.
    const redisInfo = new Redis(redis.url);
    const redisPid = Number(/process_id:(\d+)/.exec(await redisInfo.info('server'))![1]);
    redisInfo.disconnect();
    const ours = () => cpuSeconds(process.pid, undefined, true) + cpuSeconds(gw.proc.pid!) + cpuSeconds(redisPid);
    const watched = async (run: () => Promise<PathRun>): Promise<PathRun> => {
      const [ticks, cpu, started] = [machineTicks(), ours(), performance.now()];
      const result = await run();
      const [ticksAfter, cpuAfter, elapsed] = [machineTicks(), ours(), (performance.now() - started) / 1000];
      const busy = cores * (1 - (ticksAfter.idle - ticks.idle) / (ticksAfter.total - ticks.total));
      return { ...result, otherCores: round(Math.max(0, busy - (cpuAfter - cpu) / elapsed), 2) };
    };

    const gatewayPaths: GatewayPath[] = ['inferJson', 'v2Json', ...(binaryNote ? [] : ['v2Binary' as const])];
    const measure = async (path: GatewayPath, secs: number): Promise<PathRun> => {
      const pid = gw.proc.pid!;
      const cpu = () => ({ threads: threadCpuSeconds(pid), process: cpuSeconds(pid), redis: cpuSeconds(redisPid), client: cpuSeconds(process.pid, undefined, true) });
      const at = cpu();
      const r =
        path === 'inferJson'
          ? await closedLoop(`${gw.url}/infer`, bodies.inferJson, connections, secs, client)
          : path === 'v2Json'
            ? await closedLoop(v2Url, bodies.v2Json, connections, secs, client)
            : await closedLoopRaw(v2Url, bodies.v2Binary.body, binaryHeaders, connections, secs, client);
      const after = cpu();
      const { mainThread, sessionWorkers } = splitThreads(pid, at.threads, after.threads, workerThreads);
      const rows = r.throughput * r.seconds;
      const perRow = (seconds: number) => round((seconds * 1000) / rows, 3);
      const coreMs = {
        'event loop': perRow(mainThread),
        'session workers': perRow(sessionWorkers),
        'other gateway threads': perRow(after.process - at.process - mainThread - sessionWorkers),
        Redis: perRow(after.redis - at.redis),
        'client and bench': perRow(after.client - at.client),
      };
      return { rowsPerSecond: r.throughput, p50: r.p50, p99: r.p99, errors: r.errors, mainThreadMsPerRow: r.throughput > 0 ? perRow(mainThread) : undefined, coreMs };
    };

    log(`warm-up: ${Math.min(2, seconds)} s closed loop on each gateway path`);
    for (const path of gatewayPaths) {
      await measure(path, Math.min(2, seconds));
      await settle(gw.proc.pid!);
    }
    // Each repeat tries every batch size directly, then each gateway path, so a neighbour's load at one moment
    // moves neither the choice of batch nor the ratios much.
    const directRuns: Record<number, PathRun[]> = Object.fromEntries(batches.map((b) => [b, []]));
    const perCoreRuns: Record<number, PathRun[]> = Object.fromEntries(batches.map((b) => [b, []]));
    const runs = Object.fromEntries(gatewayPaths.map((p) => [p, [] as PathRun[]])) as Record<GatewayPath, PathRun[]>;
    const parseRuns = { inferJson: [] as number[], v2Json: [] as number[] };
    const line = (run: PathRun) =>
      `${thousands(run.rowsPerSecond)} rows/s, p50 ${fmtMs(run.p50)} p99 ${fmtMs(run.p99)} ms, errors ${run.errors}${run.mainThreadMsPerRow !== undefined ? `, gateway main thread ${run.mainThreadMsPerRow} ms/row` : ''}, other processes ${run.otherCores} cores`;
    for (let r = 1; r <= repeats; r++) {
      for (const batch of batches) {
        const run = await watched(() => direct(session, row, shape, batch, Math.max(0.5, seconds / 2)));
        directRuns[batch].push(run);
        log(`${r}/${repeats} direct ONNX Runtime, batch ${batch}: ${line(run)}`);
        const perCoreRun = await watched(() => perCore.run(row, shape, batch, Math.max(0.5, seconds / 2)));
        perCoreRuns[batch].push(perCoreRun);
        log(`${r}/${repeats} direct ONNX Runtime, a single-threaded session per core, batch ${batch}: ${line(perCoreRun)}`);
      }
      for (const path of gatewayPaths) {
        const run = await watched(() => measure(path, seconds));
        await settle(gw.proc.pid!);
        runs[path].push(run);
        log(`${r}/${repeats} ${PATH_NAMES[path]}: ${line(run)}`);
      }
      // Once the gateway has settled, so that nothing else runs on the cores meanwhile.
      parseRuns.inferJson.push(jsonParseMs(bodies.inferJson));
      parseRuns.v2Json.push(jsonParseMs(bodies.v2Json));
    }

    const summarise = (list: PathRun[]) => {
      const mainThread = list.map((x) => x.mainThreadMsPerRow).filter((x): x is number => x !== undefined);
      return {
        rowsPerSecond: median(list.map((x) => x.rowsPerSecond)),
        p50: median(list.map((x) => x.p50)),
        p99: median(list.map((x) => x.p99)),
        errors: list.reduce((n, x) => n + x.errors, 0),
        mainThreadMsPerRow: mainThread.length ? median(mainThread) : undefined,
        coreMs: list[0].coreMs && Object.fromEntries(Object.keys(list[0].coreMs).map((k) => [k, median(list.map((x) => x.coreMs?.[k] ?? NaN))])),
        otherCores: median(list.map((x) => x.otherCores ?? NaN)),
      };
    };
    const byBatch = (list: Record<number, PathRun[]>) => Object.fromEntries(batches.map((b) => [b, summarise(list[b])]));
    const fastest = (summaries: Record<number, { rowsPerSecond: number }>) => batches.reduce((best, b) => (summaries[b].rowsPerSecond > summaries[best].rowsPerSecond ? b : best));
    const directByBatch = byBatch(directRuns);
    const bestBatch = fastest(directByBatch);
    const limit = directByBatch[bestBatch].rowsPerSecond;
    const perCoreByBatch = byBatch(perCoreRuns);
    const perCoreBatch = fastest(perCoreByBatch);
    const perCoreBest = perCoreByBatch[perCoreBatch];
    const results = [
      { path: 'direct', name: `direct ONNX Runtime, batch ${bestBatch}`, ...directByBatch[bestBatch], ratio: 1 },
      { path: 'directPerCore', name: `direct, a session per core, batch ${perCoreBatch}`, ...perCoreBest, ratio: limit > 0 ? round(perCoreBest.rowsPerSecond / limit, 3) : NaN },
      ...gatewayPaths.map((path) => {
        const s = summarise(runs[path]);
        return { path, name: PATH_NAMES[path], ...s, ratio: limit > 0 ? round(s.rowsPerSecond / limit, 3) : NaN };
      }),
    ];

    const parseMs: Partial<Record<GatewayPath, number>> = { inferJson: median(parseRuns.inferJson), v2Json: median(parseRuns.v2Json) };
    const info = { date: new Date().toISOString(), commit: commit(), machine: machine() };
    console.log(`\n=== Real shapes: ${model.id}, input ${input}, ${connections} connections, median of ${repeats} x ${seconds} s ===`);
    console.log(`${'path'.padEnd(36)}${pad('rows/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('main thread ms/row', 20)}${pad('others', 8)}${pad('ratio', 8)}`);
    for (const r of results) {
      console.log(`${r.name.padEnd(36)}${pad(thousands(r.rowsPerSecond), 9)}${pad(fmtMs(r.p50), 9)}${pad(fmtMs(r.p99), 9)}${pad(r.errors, 8)}${pad(fmtMs(r.mainThreadMsPerRow), 20)}${pad(fmtMs(r.otherCores), 8)}${pad(r.ratio.toFixed(2), 8)}`);
    }
    if (binaryNote) console.log(binaryNote);
    const busiest = Math.max(...results.map((r) => r.otherCores));
    if (busiest > BUSY_CORES) console.log(`the machine was busy: other processes kept up to ${busiest.toFixed(2)} cores busy (median per path), so the limit and the ratios are disturbed; rerun when it is quiet`);
    console.log(`direct, by batch (rows/s): ${batches.map((b) => `${b}: ${thousands(directByBatch[b].rowsPerSecond)}`).join(', ')}; its latency is per run of ${bestBatch} rows`);
    console.log(`direct, a single-threaded session per core, by batch (rows/s): ${batches.map((b) => `${b}: ${thousands(perCoreByBatch[b].rowsPerSecond)}`).join(', ')}`);
    const beside = results.filter((r) => r.path !== 'direct' && r.path !== 'directPerCore').map((r) => `${r.name} ${(r.rowsPerSecond / perCoreBest.rowsPerSecond).toFixed(2)}`);
    console.log(`against a session per core instead of the limit: ${beside.join(', ')}`);
    for (const path of ['inferJson', 'v2Json'] as const) {
      const main = results.find((r) => r.path === path)?.mainThreadMsPerRow;
      const times = main !== undefined ? main / parseMs[path]! : NaN;
      console.log(`${PATH_NAMES[path]}: JSON.parse of the body alone ${fmtMs(parseMs[path])} ms; event loop per request ${times.toFixed(1)}x that (target <= ${PARSE_TARGET}x): ${times <= PARSE_TARGET ? 'PASS' : 'FAIL'}`);
    }
    console.log('CPU per row, core-ms (medians):');
    for (const r of results) if (r.coreMs) console.log(`  ${r.name.padEnd(36)}${Object.entries(r.coreMs).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
    console.log(`gateway paths: one row a request, client ${client} on the same cores; others: cores busy with processes outside the benchmark`);
    console.log(`${info.date.slice(0, 10)}, commit ${info.commit}, ${info.machine.cores} cores ${info.machine.cpu}, Node ${info.machine.node}, ${info.machine.platform}`);

    const file = writeResult(`shapes-${choice}.json`, {
      benchmark: 'shapes',
      ...info,
      model: { id: model.id, input: [-1, ...shape], classes: model.spec.classes },
      bodyBytes: { inferJson: bodies.inferJson.length, v2Json: bodies.v2Json.length, v2Binary: bodies.v2Binary.body.length },
      settings: { seconds, repeats, connections, client, batches },
      bestBatch,
      limitRowsPerSecond: limit,
      jsonParseMs: parseMs,
      results,
      directByBatch,
      perCoreByBatch,
      binaryNote,
      runs: { direct: directRuns, directPerCore: perCoreRuns, ...runs },
    });
    console.log(`\nwrote ${file}`);
  } finally {
    await gateway?.stop();
    await redis.stop();
    await session.release();
    await perCore.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
