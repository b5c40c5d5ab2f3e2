import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLOSED_LOOP_CLIENTS } from './load';
import { binaryRequest, closedLoopRaw, nest } from './shapes';

const ROOT = join(__dirname, '..', '..');

/** Answers 200 only when the body is the JSON header the header names, then exactly 4 float32 bytes of 1.5 to 3 (400 otherwise). */
const CHECKING_SERVER = `
const server = require('node:http').createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const n = Number(req.headers['inference-header-content-length']);
    let ok = false;
    try {
      const header = JSON.parse(body.subarray(0, n).toString());
      const data = new Float32Array(body.buffer.slice(body.byteOffset + n, body.byteOffset + body.length));
      ok = header.inputs[0].parameters.binary_data_size === 16 && data.join(',') === '1.5,2,2.5,3';
    } catch {}
    res.statusCode = ok ? 200 : 400;
    res.end('{}');
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;

describe('bench:shapes', () => {
  it('nests a row to its shape, in row-major order', () => {
    expect(nest([1, 2, 3, 4, 5, 6], [2, 3])).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(nest([1, 2, 3, 4], [2, 1, 2])).toEqual([[[1, 2]], [[3, 4]]]);
  });

  it('frames a V2 binary request as a JSON header of the length it names, then the raw float32 bytes', () => {
    const { body, headerLength } = binaryRequest(Float32Array.from([1.5, 2]), [2]);
    expect(JSON.parse(body.subarray(0, headerLength).toString())).toEqual({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] });
    expect(body.length).toBe(headerLength + 8);
    expect([body.readFloatLE(headerLength), body.readFloatLE(headerLength + 4)]).toEqual([1.5, 2]);
  });

  describe.each(CLOSED_LOOP_CLIENTS)('a binary closed loop with %s', (client) => {
    // A server in its own process: wrk runs synchronously and would block one in this process.
    let server: ChildProcess;
    let url: string;
    beforeAll(async () => {
      server = spawn(process.execPath, ['-e', CHECKING_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      const port = await new Promise<string>((resolve) => server.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
      url = `http://127.0.0.1:${port}/`;
    });
    afterAll(() => server?.kill());

    it('sends the body byte for byte with its headers, and counts non-2xx answers as errors', async () => {
      const { body, headerLength } = binaryRequest(Float32Array.from([1.5, 2, 2.5, 3]), [4]);
      const ok = await closedLoopRaw(url, body, { 'inference-header-content-length': String(headerLength) }, 2, 1, client);
      expect(ok.requests).toBeGreaterThan(50);
      expect([ok.errors, ok.throughput > 0, ok.p50 <= ok.p99]).toEqual([0, true, true]);
      const wrong = await closedLoopRaw(url, body, { 'inference-header-content-length': String(headerLength - 1) }, 2, 1, client);
      expect(wrong.errors).toBe(wrong.requests);
      expect(wrong.throughput).toBe(0);
    });
  });

  it('measures direct ONNX Runtime and the gateway paths in one run, and prints each ratio to the limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-bench-'));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', '@swc-node/register', join(__dirname, 'shapes.ts'), '--model', 'image', '--seconds', '1', '--repeats', '1', '--connections', '8', '--batches', '1,8', '--results', dir],
      { cwd: ROOT, timeout: 90_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } },
    );
    expect(stdout).toMatch(/=== Real shapes: image_v1, input \[N, 3, 48, 192\] float32 \(27,648 values a row\), 8 connections, median of 1 x 1 s ===/);
    const ratio = (name: string) => Number(new RegExp(`^${name.replace(/[./]/g, '\\$&')} +[\\d,]+ +[\\d.]+ +[\\d.]+ +0 +[\\d.-]+ +[\\d.-]+ +(\\d+\\.\\d\\d)$`, 'm').exec(stdout)?.[1]);
    expect(stdout).toMatch(/^direct ONNX Runtime, batch (1|8) +[\d,]+ .* 1\.00$/m);
    // The gateway's own layout called directly, beside the limit, and each gateway path against it.
    expect(stdout).toMatch(/^direct, a session per core, batch (1|8) +[\d,]+ .* \d+\.\d\d$/m);
    expect(stdout).toMatch(/^against a session per core instead of the limit: POST \/infer, JSON \d+\.\d\d, /m);
    for (const path of ['POST /infer, JSON', 'POST /v2/.../infer, JSON']) expect(ratio(path)).toBeGreaterThan(0);
    // V2 binary is measured when the gateway takes it, and otherwise named as skipped.
    expect(ratio('POST /v2/.../infer, binary') > 0 || /^V2 binary not measured: the gateway answered 4\d\d/m.test(stdout)).toBe(true);
    expect(stdout).toMatch(/^\d{4}-\d\d-\d\d, commit ([0-9a-f]+(-dirty)?|unknown), \d+ cores .+, Node v\d+/m);

    const result = JSON.parse(readFileSync(join(dir, 'shapes-image.json'), 'utf8'));
    expect(result.model).toEqual({ id: 'image_v1', input: [-1, 3, 48, 192], classes: 10 });
    expect(result.limitRowsPerSecond).toBeGreaterThan(0);
    expect([1, 8]).toContain(result.bestBatch);
    expect(result.perCoreByBatch['8'].rowsPerSecond).toBeGreaterThan(0);
    for (const r of result.results) {
      expect(r.errors).toBe(0);
      // How busy the rest of the machine was, so a disturbed run shows as one.
      expect(r.otherCores).toBeGreaterThanOrEqual(0);
    }
  }, 90_000);
});
