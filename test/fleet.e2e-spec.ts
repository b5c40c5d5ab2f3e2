import IORedis from 'ioredis';
import { copyFileSync, cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXAMPLE_INPUT } from './support/example-input';
import { GatewayProcess, HttpAnswer, ROOT, getJson, post, sleep, spawnGateway, statuses, waitFor } from './support/gateway';
import { scrape, sample } from './support/observability';
import { inferQueues } from './support/queued-work';
import { TestRedis } from './support/redis-server';

const TTL_S = 2;
const infer = (gw: GatewayProcess, model = 'stub_v1') => post(`${gw.url}/infer`, { model_id: model, payload: { input: EXAMPLE_INPUT } });
const del = async (url: string): Promise<HttpAnswer> => {
  const started = performance.now();
  const res = await fetch(url, { method: 'DELETE' });
  return { status: res.status, body: await res.json(), ms: performance.now() - started };
};
const ready = async (gw: GatewayProcess) => (await fetch(`${gw.url}/health/ready`)).status === 200;
const liveReplicas = async (gw: GatewayProcess) => ((await getJson(`${gw.url}/health`)).body.replicas as { replica_id: string }[]).length;

/** A MODELS_DIR whose two stub weight files hold each other's bytes: same names, other files. */
function otherBytesDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bales-other-'));
  cpSync(join(ROOT, 'models'), dir, { recursive: true });
  copyFileSync(join(ROOT, 'models', 'stub_v2.onnx'), join(dir, 'stub_v1', 'model.onnx'));
  copyFileSync(join(ROOT, 'models', 'stub_v1', 'model.onnx'), join(dir, 'stub_v2.onnx'));
  return dir;
}

/** Three gateway processes on one throwaway Redis: one fleet. */
describe('one fleet, one model state: Models API calls hold on every replica (three processes, one Redis)', () => {
  let redis: TestRedis;
  let fleet: GatewayProcess[] = [];
  const extra: GatewayProcess[] = [];
  const spawn = (env: Record<string, string> = {}) => spawnGateway(redis.url, { THREAD_POOL_SIZE: '1', FLEET_HEARTBEAT_TTL_S: String(TTL_S), ...env });

  beforeAll(async () => {
    redis = await TestRedis.start();
    fleet = await Promise.all([spawn(), spawn(), spawn()]);
    for (const gw of fleet) await waitFor(() => ready(gw), 30000, 100);
    for (const gw of fleet) await waitFor(async () => (await liveReplicas(gw)) === 3, 10000, 100);
  }, 90000);

  afterAll(async () => {
    await Promise.all([...fleet, ...extra].map((gw) => gw.stop('SIGKILL')));
    await redis?.stop();
  }, 30000);

  /** Runs `test` with one more replica, which is gone afterwards however the test ends. */
  const withReplica = async (env: Record<string, string>, test: (gw: GatewayProcess) => Promise<void>) => {
    const gw = await spawn(env);
    extra.push(gw);
    try {
      await test(gw);
    } finally {
      await gw.stop('SIGKILL');
      extra.splice(extra.indexOf(gw), 1);
      await waitFor(async () => (await liveReplicas(fleet[0])) === 3, 10000, 100);
    }
  };

  it('lists every live replica in /health and each replica’s version and state in GET /models/:id', async () => {
    const health = (await getJson(`${fleet[0].url}/health`)).body;
    expect(health.replicas.map((r: { replica_id: string }) => r.replica_id)).toContain(health.replica_id);
    expect(health.replicas).toHaveLength(3);
    expect(sample(await scrape(fleet[2].url), 'bales_fleet_replicas')).toBe(3);
    const model = (await getJson(`${fleet[1].url}/models/stub_v1`)).body;
    expect(model.replicas).toHaveLength(3);
    for (const r of model.replicas) expect(r).toMatchObject({ version: model.version, state: 'ready', held: [model.version] });
  });

  it('registers on one replica, and the model is served through all three when the call returns', async () => {
    const created = await post(`${fleet[0].url}/models`, { model_id: 'stub_b', weights_path: 'stub_v2.onnx', task: 'classification' });
    expect(created.status).toBe(201);
    expect(created.body.replicas).toHaveLength(3);
    const answers = await Promise.all(fleet.flatMap((gw) => Array.from({ length: 20 }, () => infer(gw, 'stub_b'))));
    expect(statuses(answers)).toEqual({ 200: 60 });
    expect(new Set(answers.map((a) => a.body.model_version))).toEqual(new Set([created.body.version]));
    // Registered anywhere, the id is taken everywhere.
    expect((await post(`${fleet[2].url}/models`, { model_id: 'stub_b', weights_path: 'stub_v2.onnx', task: 'classification' })).status).toBe(409);
  });

  it('reloads fleet-wide: after the 200, every replica answers with the new version', async () => {
    const before = (await infer(fleet[2])).body.model_version;
    const swap = await post(`${fleet[1].url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' });
    expect(swap.status).toBe(200);
    expect(swap.body).toMatchObject({ model_id: 'stub_v1', old_version: before });
    expect(swap.body.replicas).toHaveLength(3);
    for (const r of swap.body.replicas) expect(r.load_ms).toEqual(expect.any(Number));
    const answers = await Promise.all(fleet.flatMap((gw) => Array.from({ length: 30 }, () => infer(gw))));
    expect(statuses(answers)).toEqual({ 200: 90 });
    expect(new Set(answers.map((a) => a.body.model_version))).toEqual(new Set([swap.body.new_version]));
  });

  it('answers 409 to the second of two reloads of one model started on two replicas at once', async () => {
    const [a, b] = await Promise.all([
      post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v1/model.onnx' }),
      post(`${fleet[2].url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const refused = a.status === 409 ? a : b;
    expect(refused.body.message).toMatch(/in progress, started on replica/);
  });

  it('refuses a reload that does not load everywhere, naming the file, and keeps the old version serving everywhere', async () => {
    const version = (await infer(fleet[0])).body.model_version;
    const bad = await post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v1/config.json' });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ replica_id: expect.stringMatching(/\S+, \S+, \S+/), message: expect.stringMatching(/^cannot load stub_v1\/config\.json/) });
    const answers = await Promise.all(fleet.map((gw) => infer(gw)));
    expect(answers.map((a) => [a.status, a.body.model_version])).toEqual(fleet.map(() => [200, version]));
  });

  it('keeps the version cut under 200 concurrent clients across 20 fleet-wide reloads: every answer 200, none older than a reload it followed', async () => {
    interface Answer {
      sent: number;
      got: number;
      status: number;
      version: number;
    }
    const answers: Answer[] = [];
    let stop = false;
    const client = async (i: number) => {
      const gw = fleet[i % 3];
      while (!stop) {
        const sent = performance.now();
        const res = await infer(gw);
        answers.push({ sent, got: performance.now(), status: res.status, version: Number(res.body.model_version) });
      }
    };
    const clients = Array.from({ length: 200 }, (_, i) => client(i));
    const reloads: { start: number; end: number; status: number; version: number }[] = [];
    for (let i = 0; i < 20; i++) {
      await sleep(150);
      const start = performance.now();
      const res = await post(`${fleet[i % 3].url}/models/stub_v1/reload`, { weights_path: i % 2 === 0 ? 'stub_v1/model.onnx' : 'stub_v2.onnx' });
      reloads.push({ start, end: performance.now(), status: res.status, version: Number(res.body.new_version) });
    }
    await sleep(200);
    stop = true;
    await Promise.all(clients);

    expect(reloads.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(statuses(answers as unknown as HttpAnswer[])).toEqual({ 200: answers.length });
    expect(answers.length).toBeGreaterThan(1000);
    for (const r of reloads) {
      // Admitted after the reload answered: the new version or a later one.
      const stale = answers.filter((a) => a.sent > r.end && a.version < r.version);
      expect(stale).toEqual([]);
      // Answered before the reload began: never a version it had not yet made.
      const early = answers.filter((a) => a.got < r.start && a.version >= r.version);
      expect(early).toEqual([]);
    }
    const seen = new Set(answers.map((a) => a.version));
    expect(seen.size).toBeGreaterThan(10);
    // Once no job of an old version is left anywhere, every replica has released it: each holds the latest alone.
    const latest = String(reloads[reloads.length - 1].version);
    await waitFor(async () => ((await getJson(`${fleet[0].url}/models/stub_v1`)).body.replicas as { held: string[] }[]).every((r) => r.held.join() === latest), 10000, 100);
    // And their queues are gone from Redis: twenty reloads leave only the served version's.
    const stubQueues = async () => (await inferQueues(redis.url, 'bales')).filter((q) => q.startsWith('infer/stub_v1/'));
    await waitFor(async () => (await stubQueues()).join() === `infer/stub_v1/${latest}`, 10000, 100);
  }, 120000);

  it('deletes on one replica: requests accepted anywhere are answered, then every replica answers 404', async () => {
    const sent = fleet.flatMap((gw) => Array.from({ length: 30 }, () => infer(gw, 'stub_b')));
    await sleep(5);
    const deleted = await del(`${fleet[1].url}/models/stub_b`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.replicas).toHaveLength(3);
    const answers = await Promise.all(sent);
    // Each request was either accepted and answered, or refused at admission because admission had stopped.
    expect(Object.keys(statuses(answers)).every((s) => s === '200' || s === '404')).toBe(true);
    const served = answers.filter((a) => a.status === 200).length;
    expect(deleted.body.drained_requests).toBeLessThanOrEqual(served);
    for (const gw of fleet) {
      expect((await infer(gw, 'stub_b')).status).toBe(404);
      expect((await getJson(`${gw.url}/models/stub_b`)).status).toBe(404);
    }
  });

  it('serves the catalog’s version on a replica started after a reload, before it reports ready', async () => {
    const current = (await getJson(`${fleet[0].url}/models/stub_v1`)).body.version;
    expect(Number(current)).toBeGreaterThan(1);
    await withReplica({}, async (late) => {
      await waitFor(() => ready(late), 30000, 50);
      const first = await infer(late);
      expect(first).toMatchObject({ status: 200, body: { model_version: current } });
      expect((await getJson(`${late.url}/models/stub_v1`)).body.version).toBe(current);
    });
  }, 60000);

  it('keeps a model whose file differs on one replica failed there, with the reason, and never runs its jobs there', async () => {
    await withReplica({ MODELS_DIR: otherBytesDir(), STRICT_READINESS: 'false', DIRECT_DISPATCH: 'false' }, async (odd) => {
      await waitFor(async () => (await getJson(`${odd.url}/health`)).body.models.some((m: { id: string; state: string }) => m.id === 'stub_v1' && m.state === 'failed'), 20000, 100);
      const model = (await getJson(`${odd.url}/models/stub_v1`)).body;
      expect(model).toMatchObject({ state: 'failed', reason: expect.stringMatching(/differs from the fleet's file for model 'stub_v1'/) });
      // Queued work for stub_v1 goes only to the replicas that hold it.
      const answers = await Promise.all([...Array.from({ length: 60 }, (_, i) => infer(fleet[i % 3])), ...Array.from({ length: 20 }, () => infer(odd))]);
      const fromOdd = answers.slice(60);
      expect(statuses(answers.slice(0, 60))).toEqual({ 200: 60 });
      expect(statuses(fromOdd)).toEqual({ 503: 20 });
      expect((await getJson(`${odd.url}/health`)).body.processor.rows_run).toBe(0);
    });
  }, 60000);

  it('completes a reload on the live replicas within the heartbeat TTL when one is killed with kill -9 in the middle of it', async () => {
    await withReplica({}, async (victim) => {
      await waitFor(() => ready(victim), 30000, 50);
      await waitFor(async () => (await liveReplicas(fleet[0])) === 4, 10000, 100);
      // Frozen, it still counts as live but answers nothing: the call waits on it until it is gone.
      victim.proc.kill('SIGSTOP');
      const reload = post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' });
      await sleep(300);
      victim.proc.kill('SIGKILL');
      const answer = await reload;
      expect(answer.status).toBe(200);
      expect(answer.ms).toBeLessThan((TTL_S + 2) * 1000);
      expect(answer.body.replicas).toHaveLength(3);
      const answers = await Promise.all(fleet.map((gw) => infer(gw)));
      expect(answers.map((a) => [a.status, a.body.model_version])).toEqual(fleet.map(() => [200, answer.body.new_version]));
    });
  }, 60000);

  it('brings a replica that was away back at the catalog’s versions', async () => {
    // Frozen past its heartbeat's TTL, a replica drops out of the fleet; the reload goes on without it.
    fleet[2].proc.kill('SIGSTOP');
    let swap: HttpAnswer | undefined;
    try {
      swap = await post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' });
    } finally {
      fleet[2].proc.kill('SIGCONT');
    }
    expect(swap.status).toBe(200);
    expect(swap.body.replicas).toHaveLength(2);
    const version = swap.body.new_version;
    await waitFor(async () => (await getJson(`${fleet[2].url}/models/stub_v1`)).body.version === version, 10000, 100);
    expect(await infer(fleet[2])).toMatchObject({ status: 200, body: { model_version: version } });
    await waitFor(async () => (await liveReplicas(fleet[0])) === 3, 10000, 100);
  }, 30000);

  it('aborts cleanly within the heartbeat TTL when the replica making a reload is killed with kill -9 in the middle of it', async () => {
    const before = (await infer(fleet[0])).body.model_version;
    await withReplica({}, async (caller) => {
      await waitFor(() => ready(caller), 30000, 50);
      await waitFor(async () => (await liveReplicas(fleet[0])) === 4, 10000, 100);
      // A frozen replica holds the call in its prepare phase while its maker dies.
      fleet[2].proc.kill('SIGSTOP');
      const reload = post(`${caller.url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' }).catch(() => undefined);
      await sleep(300);
      caller.proc.kill('SIGKILL');
      fleet[2].proc.kill('SIGCONT');
      await reload;
    });
    // Nothing switched: every replica still serves the old version.
    const answers = await Promise.all(fleet.map((gw) => infer(gw)));
    expect(answers.map((a) => [a.status, a.body.model_version])).toEqual(fleet.map(() => [200, before]));
    // The dead replica's lock lapses and the version it prepared elsewhere is dropped: a new reload goes through.
    const started = performance.now();
    let next: HttpAnswer | undefined;
    await waitFor(async () => (next = await post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v1/model.onnx' })).status === 200, 15000, 200);
    expect(performance.now() - started).toBeLessThan((TTL_S + 4) * 1000);
    expect(next!.body.replicas).toHaveLength(3);
  }, 60000);

  it('writes the catalog back when Redis comes back empty, and drops no model', async () => {
    const client = new IORedis(redis.url);
    try {
      const version = (await getJson(`${fleet[0].url}/models/stub_v1`)).body.version;
      await client.flushall();
      // One catalog check later (every 2 s), the replicas have written back what they serve.
      await waitFor(async () => (await client.hexists('bales:fleet:catalog', 'stub_v1')) === 1, 10000, 100);
      await sleep(2500);
      const answers = await Promise.all(fleet.map((gw) => infer(gw)));
      expect(answers.map((a) => [a.status, a.body.model_version])).toEqual(fleet.map(() => [200, version]));
      expect(JSON.parse((await client.hget('bales:fleet:catalog', 'stub_v1'))!)).toMatchObject({ id: 'stub_v1', version: Number(version) });
    } finally {
      client.disconnect();
    }
  }, 30000);

  it('answers Models API calls 503 at once while Redis is gone', async () => {
    await redis.stop();
    await waitFor(async () => (await getJson(`${fleet[0].url}/health`)).body.redis === 'down', 10000, 50);
    const answers = await Promise.all([
      post(`${fleet[0].url}/models/stub_v1/reload`, { weights_path: 'stub_v2.onnx' }),
      post(`${fleet[1].url}/models`, { model_id: 'stub_c', weights_path: 'stub_v2.onnx', task: 'classification' }),
      del(`${fleet[2].url}/models/stub_v1`),
    ]);
    expect(answers.map((a) => a.status)).toEqual([503, 503, 503]);
    for (const a of answers) expect(a.ms).toBeLessThan(1000);
  });
});
