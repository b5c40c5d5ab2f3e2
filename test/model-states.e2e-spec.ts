import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { encodeModel } from '../scripts/onnx/onnx-writer';
import { GatewayProcess, TestGateway, getJson, post, spawnGateway, startGateway } from './support/gateway';
import { addModel, embedder, runDirect, stubModelsDir } from './support/models';
import { sample, scrape } from './support/observability';
import { TestRedis } from './support/redis-server';
import { EXAMPLE_INPUT } from './support/example-input';
import { framesOfThree, geluAtOpset17, reflectPad, stateNamedApart } from './support/warm-up-models';

const PROTOBUF = 'cannot load corrupt/model.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)';

/** A MODELS_DIR with the stub, and beside it a folder whose model.onnx is not ONNX and one whose config.json does not parse. */
function brokenRepository(): string {
  const dir = stubModelsDir();
  mkdirSync(join(dir, 'corrupt'));
  writeFileSync(join(dir, 'corrupt/model.onnx'), 'this is not an onnx file');
  addModel(dir, 'broken_config', embedder(), { task: 'embedding' });
  writeFileSync(join(dir, 'broken_config/config.json'), '{"task": "embedding",');
  return dir;
}

const features = Array.from({ length: 16 }, (_, i) => i / 16);

async function call(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

describe('a corrupt model.onnx and an unreadable config.json beside a good model at boot, STRICT_READINESS=true (the default)', () => {
  const dir = brokenRepository();
  // A model no made-up warm-up input fits: served, with a warning in the log.
  addModel(dir, 'frames', framesOfThree, { task: 'raw' });
  let redis: TestRedis;
  let gw: GatewayProcess;

  beforeAll(async () => {
    redis = await TestRedis.start();
    gw = await spawnGateway(redis.url, { MODELS_DIR: dir });
  });
  afterAll(async () => {
    await gw?.stop();
    await redis?.stop();
  });

  it('keeps running and serves the good model; live is 200, ready 503 naming each failed model and why', async () => {
    expect(gw.proc.exitCode).toBeNull();
    expect(await getJson(`${gw.url}/health/live`)).toMatchObject({ status: 200 });
    const ready = await getJson(`${gw.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.message).toContain(`model 'corrupt' is failed (${PROTOBUF})`);
    expect(ready.body.message).toMatch(/model 'broken_config' is failed \(broken_config\/config\.json: not valid JSON \(.+\)\)/);
    expect(ready.body.message).toContain('STRICT_READINESS=true needs every model ready');
    expect(ready.body.details.models).toMatchObject({ status: 'down', unready: { corrupt: PROTOBUF, broken_config: expect.stringContaining('not valid JSON') } });
    expect(ready.body.details.redis.status).toBe('up');
    expect(await getJson(`${gw.url}/v2/health/ready`)).toMatchObject({ status: 503, body: { ready: false } });
    expect(await getJson(`${gw.url}/v2/health/live`)).toMatchObject({ status: 200, body: { live: true } });
    expect((await post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
  });

  it('logs why each model failed, and warns of the model no made-up warm-up input fits', () => {
    expect(gw.output()).toContain(`model corrupt is failed: ${PROTOBUF}`);
    expect(gw.output()).toContain('model broken_config is failed: broken_config/config.json: not valid JSON');
    expect(gw.output()).toMatch(/model frames v1: no made-up input fits the model, so it is served unwarmed \(.*Reshape/);
  });

  it('shows each failed model with its reason in GET /models, GET /models/:id and GET /health', async () => {
    const list = (await getJson(`${gw.url}/models`)).body;
    expect(list.map((m: { id: string; state: string }) => [m.id, m.state])).toEqual([
      ['broken_config', 'failed'],
      ['corrupt', 'failed'],
      ['frames', 'ready'],
      ['stub_v1', 'ready'],
    ]);
    const corrupt = await getJson(`${gw.url}/models/corrupt`);
    expect(corrupt.status).toBe(200);
    expect(corrupt.body).toMatchObject({ id: 'corrupt', state: 'failed', reason: PROTOBUF, signature: { inputs: [], outputs: [] } });
    expect(corrupt.body.loadedAt).toBeUndefined();
    expect(list.find((m: { id: string }) => m.id === 'frames').warmup).toEqual({ source: 'synthetic', warning: expect.stringContaining('Reshape') });
    const health = (await getJson(`${gw.url}/health`)).body;
    expect(health.status).toBe('degraded');
    expect(health.models).toContainEqual({ id: 'corrupt', version: '1', task: 'classification', state: 'failed', reason: PROTOBUF });
    expect(health.models).toContainEqual({ id: 'stub_v1', version: '1', task: 'classification', state: 'ready' });
  });

  it('exports each model state in bales_model_state: 1 for the state it is in, 0 for the others', async () => {
    const text = await scrape(gw.url);
    expect(sample(text, 'bales_model_state', { model_id: 'corrupt', state: 'failed' })).toBe(1);
    expect(sample(text, 'bales_model_state', { model_id: 'corrupt', state: 'ready' })).toBe(0);
    expect(sample(text, 'bales_model_state', { model_id: 'stub_v1', state: 'ready' })).toBe(1);
    expect(sample(text, 'bales_model_state', { model_id: 'stub_v1', state: 'failed' })).toBe(0);
    expect(text).toContain('bales_model_state{model_id="stub_v1",state="draining"} 0');
  });

  it('answers requests for a failed model with 503 naming the model, its state and the reason, on /infer and V2', async () => {
    const infer = await post(`${gw.url}/infer`, { model_id: 'corrupt', payload: { input: [1] } });
    expect(infer.status).toBe(503);
    expect(infer.body).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: `model 'corrupt' is failed: ${PROTOBUF}`,
      model_id: 'corrupt',
      state: 'failed',
      reason: PROTOBUF,
      request_id: expect.any(String),
    });
    const v2 = await post(`${gw.url}/v2/models/corrupt/infer`, { inputs: [{ name: 'input', shape: [1, 1], datatype: 'FP32', data: [1] }] });
    expect(v2).toMatchObject({ status: 503, body: { error: `model 'corrupt' is failed: ${PROTOBUF}` } });
  });

  it('answers V2 readiness of a failed model with 503, and its metadata with its state and reason', async () => {
    expect(await getJson(`${gw.url}/v2/models/corrupt/ready`)).toMatchObject({ status: 503, body: { name: 'corrupt', ready: false } });
    expect(await getJson(`${gw.url}/v2/models/stub_v1/ready`)).toMatchObject({ status: 200, body: { name: 'stub_v1', ready: true } });
    const metadata = await getJson(`${gw.url}/v2/models/corrupt`);
    expect(metadata.status).toBe(200);
    expect(metadata.body).toMatchObject({ name: 'corrupt', versions: ['1'], platform: 'onnxruntime_onnx', inputs: [], outputs: [], state: 'failed', reason: PROTOBUF });
    expect((await getJson(`${gw.url}/v2/models/stub_v1`)).body.state).toBeUndefined();
  });

  it('loads models fixed in place again with POST /models/:id/reload: each is ready and serves, and the replica is ready once none is failed', async () => {
    writeFileSync(join(dir, 'corrupt/model.onnx'), encodeModel(embedder()));
    writeFileSync(join(dir, 'corrupt/config.json'), JSON.stringify({ task: 'embedding' }));
    const fixed = await call('POST', `${gw.url}/models/corrupt/reload`, {});
    expect(fixed).toEqual({ status: 200, body: { model_id: 'corrupt', old_version: '1', new_version: '1', load_ms: expect.any(Number), replicas: [{ replica_id: expect.any(String), load_ms: expect.any(Number) }] } });
    expect((await getJson(`${gw.url}/models/corrupt`)).body).toMatchObject({ state: 'ready', task: 'embedding', loadedAt: expect.any(String), warmup: { source: 'synthetic' } });
    const served = await post(`${gw.url}/infer`, { model_id: 'corrupt', payload: { input: features } });
    const direct = await runDirect(join(dir, 'corrupt/model.onnx'), { features: new Tensor('float32', Float32Array.from(features), [1, 16]) });
    expect(served.status).toBe(200);
    served.body.result.embedding.forEach((v: number, i: number) => expect(v).toBeCloseTo(direct.embedding.data[i], 5));

    const still = await getJson(`${gw.url}/health/ready`);
    expect(still.status).toBe(503);
    expect(still.body.message).not.toContain("'corrupt'");
    writeFileSync(join(dir, 'broken_config/config.json'), JSON.stringify({ task: 'embedding' }));
    expect((await call('POST', `${gw.url}/models/broken_config/reload`, {})).status).toBe(200);
    expect(await getJson(`${gw.url}/health/ready`)).toMatchObject({ status: 200 });
    expect(await getJson(`${gw.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    expect((await getJson(`${gw.url}/v2/models/corrupt/ready`)).status).toBe(200);
    expect((await getJson(`${gw.url}/health`)).body.status).toBe('ok');
    expect(sample(await scrape(gw.url), 'bales_model_state', { model_id: 'corrupt', state: 'ready' })).toBe(1);
  });

  it('refuses a registration whose file does not load (422, naming the replica), and registers nothing', async () => {
    writeFileSync(join(dir, 'garbage.onnx'), 'not onnx either');
    const registered = await post(`${gw.url}/models`, { model_id: 'garbage', weights_path: 'garbage.onnx', task: 'raw' });
    expect(registered).toMatchObject({ status: 422, body: { message: 'cannot load garbage.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)', replica_id: expect.any(String) } });
    // A registration holds on every replica or on none: nothing is kept to serve 503 from.
    expect((await getJson(`${gw.url}/models/garbage`)).status).toBe(404);
    expect((await getJson(`${gw.url}/health/ready`)).status).toBe(200);
    expect(sample(await scrape(gw.url), 'bales_model_state', { model_id: 'garbage', state: 'failed' })).toBe(0);
  });
});

describe('a corrupt model.onnx beside a good one at boot, STRICT_READINESS=false', () => {
  let redis: TestRedis;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await TestRedis.start();
    gw = await startGateway(redis.url, { MODELS_DIR: brokenRepository(), STRICT_READINESS: 'false' });
  });
  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('is ready once Redis answers and the models that loaded are up, listing the failed ones in the details', async () => {
    const ready = await getJson(`${gw.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body.details.models).toMatchObject({ status: 'up', loaded: 1, unready: { corrupt: PROTOBUF } });
    expect(await getJson(`${gw.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    expect((await getJson(`${gw.url}/health/live`)).status).toBe(200);
  });

  it('still answers the failed model with 503, and serves the good one', async () => {
    expect((await getJson(`${gw.url}/v2/models/corrupt/ready`)).status).toBe(503);
    expect((await post(`${gw.url}/infer`, { model_id: 'corrupt', payload: { input: [1] } })).status).toBe(503);
    expect((await post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
  });
});

describe('warm-up that fits the model', () => {
  const dir = stubModelsDir();
  addModel(dir, 'padded', reflectPad, { task: 'raw' });
  addModel(dir, 'frames', framesOfThree, { task: 'raw' });
  addModel(dir, 'vad', stateNamedApart, { task: 'raw', batch_axes: { h: 1, hn: 1 } });
  addModel(dir, 'sampled', reflectPad, { task: 'raw', warmup: [{ name: 'a second of audio', inputs: { audio: { random: [1, 16000] } } }] });
  addModel(dir, 'unwarmed', reflectPad, { task: 'raw', warmup: false });
  addModel(dir, 'too_short', reflectPad, { task: 'raw', warmup: [{ name: 'one sample', inputs: { audio: { zeros: [1, 1] } } }] });
  addModel(dir, 'gelu', geluAtOpset17, { task: 'raw' });
  addModel(dir, 'typo', reflectPad, { task: 'raw', warmup: [{ inputs: { audio: { zero: [1, 4] } } }] });
  writeFileSync(join(dir, 'gelu.onnx'), encodeModel(geluAtOpset17));
  writeFileSync(join(dir, 'garbage.onnx'), 'not onnx');
  let redis: TestRedis;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await TestRedis.start();
    gw = await startGateway(redis.url, { MODELS_DIR: dir, STRICT_READINESS: 'false' });
  });
  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  const model = async (id: string) => (await getJson(`${gw.url}/models/${id}`)).body;

  it('warms a model that needs 2 samples on made-up inputs of 64, and serves it as ONNX Runtime answers', async () => {
    expect(await model('padded')).toMatchObject({ state: 'ready', warmup: { source: 'synthetic' } });
    expect((await model('padded')).warmup.warning).toBeUndefined();
    const res = await post(`${gw.url}/infer`, { model_id: 'padded', payload: { audio: [1, 2, 3] } });
    const direct = await runDirect(join(dir, 'padded/model.onnx'), { audio: new Tensor('float32', Float32Array.from([1, 2, 3]), [1, 3]) });
    expect(res.status).toBe(200);
    expect(res.body.result).toEqual({ outputs: { padded: { shape: [5], data: direct.padded.data } } });
  });

  it("puts the batch of made-up inputs where config.json's batch_axes says: a detector whose state names its batch apart warms up", async () => {
    expect(await model('vad')).toMatchObject({ state: 'ready', warmup: { source: 'synthetic' }, batchAxes: { audio: 0, sr: null, h: 1 } });
    expect((await model('vad')).warmup.warning).toBeUndefined();
  });

  it('serves a model no made-up input fits as ready, with the warning in GET /models, and answers inputs that fit it', async () => {
    expect(await model('frames')).toMatchObject({ state: 'ready', warmup: { source: 'synthetic', warning: expect.stringMatching(/^no made-up input fits the model/) } });
    const res = await post(`${gw.url}/infer`, { model_id: 'frames', payload: { samples: [1, 2, 3, 4, 5, 6] } });
    expect(res).toMatchObject({ status: 200, body: { result: { outputs: { frames: { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] } } } } });
  });

  it("warms with config.json's samples, or not at all for warmup false, and serves both", async () => {
    expect(await model('sampled')).toMatchObject({ state: 'ready', warmup: { source: 'config' } });
    expect(await model('unwarmed')).toMatchObject({ state: 'ready', warmup: { source: 'off' } });
    for (const id of ['sampled', 'unwarmed']) expect((await post(`${gw.url}/infer`, { model_id: id, payload: { audio: [1, 2] } })).status).toBe(200);
  });

  it('fails a model whose config.json sample fails, naming the sample and showing the signature it read', async () => {
    const tooShort = await model('too_short');
    expect(tooShort).toMatchObject({ state: 'failed', signature: { inputs: [{ name: 'audio', type: 'float32', shape: ['batch', 'samples'] }] } });
    expect(tooShort.reason).toMatch(/^too_short\/model\.onnx loads, but config\.json warm-up sample 1 \('one sample'\) failed: .*Pad reflect requires axis length >= 2/);
    const metadata = (await getJson(`${gw.url}/v2/models/too_short`)).body;
    expect(metadata).toMatchObject({ state: 'failed', reason: tooShort.reason, inputs: [{ name: 'audio', datatype: 'FP32', shape: [-1, -1] }] });
  });

  it('fails a model whose config.json warmup is malformed, naming the field', async () => {
    expect(await model('typo')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^typo\/config\.json: warmup\[0\]\.inputs\.audio must be one of \{"zeros": shape\}/) });
  });

  it('tells apart a file ONNX Runtime cannot parse, an operator it lacks, and a failed warm-up', async () => {
    const gelu = (await model('gelu')).reason;
    expect(gelu).toMatch(/^cannot load gelu\/model\.onnx: it uses an operator or opset this ONNX Runtime does not support \(.*No Op registered for Gelu with domain_version of 17/);
    const registered = await Promise.all(
      ['garbage.onnx', 'gelu.onnx'].map((weights_path, i) => post(`${gw.url}/models`, { model_id: `loose_${i}`, weights_path, task: 'raw' })),
    );
    expect(registered.map((r) => r.status)).toEqual([422, 422]);
    expect(registered[0].body.message).toBe('cannot load garbage.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)');
    expect(registered[1].body.message).toMatch(/^cannot load gelu\.onnx: it uses an operator or opset this ONNX Runtime does not support \(.*No Op registered for Gelu/);
    expect((await model('too_short')).reason).toMatch(/loads, but config\.json warm-up sample 1/);
  });

  it('loads a failed model fixed in place again: a config.json sample that now fits makes it ready', async () => {
    addModel(dir, 'too_short', reflectPad, { task: 'raw', warmup: [{ name: 'two samples', inputs: { audio: { data: [[0.5, -0.5]] } } }] });
    expect((await call('POST', `${gw.url}/models/too_short/reload`, {})).status).toBe(200);
    expect(await model('too_short')).toMatchObject({ state: 'ready', warmup: { source: 'config' } });
    expect((await post(`${gw.url}/infer`, { model_id: 'too_short', payload: { audio: [1, 2] } })).status).toBe(200);
  });
});
