import { GatewayProcess, HttpAnswer, getJson, post, sleep, spawnGateway, statuses, waitFor } from './support/gateway';
import { TestRedis } from './support/redis-server';
import { heavyModelsDir } from './support/models';
import { EXAMPLE_INPUT } from './support/example-input';

const heavy = (extra: Record<string, unknown> = {}) => ({ model_id: 'heavy', payload: { input: EXAMPLE_INPUT }, ...extra });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const pendingOn = async (gw: GatewayProcess) => (await getJson(`${gw.url}/health`)).body.pending_requests as number;

/** Sends n requests and resolves once the gateway holds or has answered all of them, i.e. accepted them all. */
async function sendAndAwaitAccepted(gw: GatewayProcess, n: number, body: unknown): Promise<Promise<HttpAnswer>[]> {
  let answered = 0;
  const sent = Array.from({ length: n }, () => post(`${gw.url}/infer`, body).finally(() => answered++));
  await waitFor(async () => (await pendingOn(gw)) + answered >= n);
  return sent;
}

/** Resolves with the exit code once the process has exited, and how long that took from now. */
function exited(gw: GatewayProcess): Promise<{ code: number | null; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    if (gw.proc.exitCode !== null) return resolve({ code: gw.proc.exitCode, ms: 0 });
    gw.proc.once('exit', (code) => resolve({ code, ms: performance.now() - started }));
  });
}

/** Each test's gateways are separate OS processes (`node main.ts`), as replicas run. */
describe('faults across real processes: signals, replica loss, priority under saturation', () => {
  let redis: TestRedis;
  let heavyDir: string;
  const procs: GatewayProcess[] = [];
  let prefixes = 0;
  const spawn = async (env: Record<string, string>) => {
    const gw = await spawnGateway(redis.url, { MODELS_DIR: heavyDir, THREAD_POOL_SIZE: '1', ...env });
    procs.push(gw);
    return gw;
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
    heavyDir = heavyModelsDir(1024);
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it('serves priority 1 ahead of a saturating flood of priority 3: its median latency is a small fraction of theirs', async () => {
    // 1,500 heavy rows keep the one worker thread busy for many seconds: a backlog long enough to show the overtaking.
    const gw = await spawn({ QUEUE_PREFIX: `p${++prefixes}`, BATCHER_TIMEOUT_S: '100' });
    const low = Array.from({ length: 1500 }, () => post(`${gw.url}/infer`, heavy({ priority: 3 })));
    await waitFor(async () => (await pendingOn(gw)) > 1000, 30000);
    const urgent: Promise<HttpAnswer>[] = [];
    for (let i = 0; i < 20; i++) {
      urgent.push(post(`${gw.url}/infer`, heavy({ priority: 1 })));
      await sleep(25);
    }
    const [lowAnswers, urgentAnswers] = [await Promise.all(low), await Promise.all(urgent)];
    expect(statuses([...lowAnswers, ...urgentAnswers])).toEqual({ 200: 1520 });
    const [p1, p3] = [median(urgentAnswers.map((a) => a.body.latency_ms)), median(lowAnswers.map((a) => a.body.latency_ms))];
    console.log(`priority under saturation: p1 median ${p1.toFixed(0)} ms, p3 median ${p3.toFixed(0)} ms`);
    expect(p1).toBeLessThan(p3 / 3);
    await gw.stop();
  }, 150_000);

  it('on SIGTERM under load: readiness false at once, new requests 503, every accepted request answered 200, exit 0', async () => {
    const gw = await spawn({ QUEUE_PREFIX: `p${++prefixes}`, BATCHER_TIMEOUT_S: '30' });
    const accepted = await sendAndAwaitAccepted(gw, 300, heavy());
    const exit = exited(gw);
    gw.proc.kill('SIGTERM');
    await waitFor(async () => (await getJson(`${gw.url}/health/ready`)).status === 503, 500);
    const ready = await getJson(`${gw.url}/health/ready`);
    expect(ready.body.error.accepting).toMatchObject({ status: 'down' });
    const late = await post(`${gw.url}/infer`, heavy());
    expect(late.status).toBe(503);
    expect(late.body.message).toContain('shutting down');

    const answers = await Promise.all(accepted);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const { code } = await exit;
    expect(code).toBe(0);
    expect(gw.output()).toMatch(/SIGTERM: refusing new requests, answering \d+ accepted ones/);
  });

  it('exits within SHUTDOWN_TIMEOUT_S on SIGTERM while Redis is unreachable', async () => {
    const own = await TestRedis.start();
    const gw = await spawnGateway(own.url, { SHUTDOWN_TIMEOUT_S: '3' });
    procs.push(gw);
    await own.stop();
    await sleep(500);
    const exit = exited(gw);
    gw.proc.kill('SIGTERM');
    const { code, ms } = await exit;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(4500);
  });

  it('exits at once on a second signal while the first still waits for accepted requests', async () => {
    // Nothing processes here, so the first signal's drain would wait the whole SHUTDOWN_TIMEOUT_S.
    const gw = await spawn({ QUEUE_PREFIX: `p${++prefixes}`, PROCESSOR_ENABLED: 'false', BATCHER_TIMEOUT_S: '60', SHUTDOWN_TIMEOUT_S: '60' });
    const waiting = Array.from({ length: 5 }, () => post(`${gw.url}/infer`, heavy()).catch(() => 'closed'));
    await waitFor(async () => (await pendingOn(gw)) === 5);
    const exit = exited(gw);
    gw.proc.kill('SIGTERM');
    await sleep(1000);
    expect(gw.proc.exitCode).toBeNull();
    const second = performance.now();
    gw.proc.kill('SIGINT');
    const { code } = await exit;
    expect(performance.now() - second).toBeLessThan(1000);
    expect(code).toBe(1);
    await Promise.all(waiting);
  });

  it('skips fetched rows of clients that closed the connection while more urgent work ran', async () => {
    // The urgent rows take seconds on a slow or loaded machine: their timeout is not what is tested.
    const gw = await spawn({ QUEUE_PREFIX: `p${++prefixes}`, BATCHER_TIMEOUT_S: '60' });
    // 320 urgent rows keep the one worker thread busy for well past the 60 ms the others wait before they leave.
    const URGENT = 320;
    const urgent = Array.from({ length: URGENT }, () => post(`${gw.url}/infer`, heavy({ priority: 1 })));
    // Every urgent request is accepted before the others are sent: on a loaded machine a late urgent request could
    // otherwise arrive after them, and a batch short of urgent rows rightly takes the less urgent ones.
    await waitFor(async () => {
      const health = (await getJson(`${gw.url}/health`)).body;
      return health.processor.rows_run >= 4 && health.pending_requests + health.processor.rows_run >= URGENT;
    });
    const controller = new AbortController();
    const leaving = Array.from({ length: 20 }, () =>
      fetch(`${gw.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(heavy({ priority: 3 })), signal: controller.signal }).then(
        (r) => r.status,
        () => 'aborted',
      ),
    );
    // Fetched at once (64 jobs may be in hand), held behind the urgent rows, and their clients leave first.
    await sleep(60);
    controller.abort();
    expect(new Set(await Promise.all(leaving))).toEqual(new Set(['aborted']));
    expect((await Promise.all(urgent)).every((a) => a.status === 200)).toBe(true);
    await sleep(500);
    const health = (await getJson(`${gw.url}/health`)).body;
    // None of the 20 ran: skipped after fetch (rows_expired) or removed from Redis before it.
    expect(health.processor.rows_run).toBe(URGENT);
    expect(health.pending_requests).toBe(0);
    // Connections the clients abandoned mid-request do not hold the shutdown until SHUTDOWN_TIMEOUT_S (20 s).
    const stopped = performance.now();
    expect(await gw.stop()).toBe(0);
    expect(performance.now() - stopped).toBeLessThan(5000);
  });

  it("skips rows fetched by another replica once their clients closed the connection", async () => {
    const env = { QUEUE_PREFIX: `p${++prefixes}`, MAX_BATCH_SIZE: '4' };
    const [front, worker] = [await spawn({ ...env, PROCESSOR_ENABLED: 'false' }), await spawn(env)];
    const controller = new AbortController();
    const sent = Array.from({ length: 200 }, () =>
      fetch(`${front.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(heavy()), signal: controller.signal }).then(
        (r) => r.status,
        () => 'aborted',
      ),
    );
    const runOnWorker = async () => (await getJson(`${worker.url}/health`)).body.processor as { rows_run: number; rows_expired: number };
    await waitFor(async () => (await runOnWorker()).rows_run >= 8);
    controller.abort();
    const runAtAbort = (await runOnWorker()).rows_run;
    const aborted = (await Promise.all(sent)).filter((o) => o === 'aborted').length;
    expect(aborted).toBeGreaterThan(100);
    await waitFor(async () => (await pendingOn(front)) === 0, 3000);
    await sleep(1500);
    const after = await runOnWorker();
    expect(after.rows_expired).toBeGreaterThan(0);
    // After the clients left, only the batches in the worker's hands and what starts while the news travels
    // over Redis run (a few dozen rows, depending on load); without the cancellation all of them would.
    expect(after.rows_run - runAtAbort).toBeLessThan(aborted / 2);
    await Promise.all([front.stop(), worker.stop()]);
  });

  it('re-runs the jobs a kill -9ed replica had fetched within seconds: the survivor answers all of its clients', async () => {
    const env = { QUEUE_PREFIX: `p${++prefixes}`, BATCHER_TIMEOUT_S: '30', MAX_BATCH_SIZE: '8' };
    const [doomed, survivor] = [await spawn(env), await spawn(env)];
    // The survivor's clients come first, so both replicas fetch their jobs; the doomed one is killed while it runs some.
    const toSurvivor = await sendAndAwaitAccepted(survivor, 500, heavy());
    const toDoomed = Array.from({ length: 100 }, () => post(`${doomed.url}/infer`, heavy()).catch(() => undefined));
    await waitFor(async () => (await getJson(`${doomed.url}/health`)).body.processor.rows_run >= 8);
    const [killedAt, killedAtWall] = [performance.now(), Date.now()];
    doomed.proc.kill('SIGKILL');
    const answers = await Promise.all(toSurvivor);
    const allAnsweredMs = performance.now() - killedAt;
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    await Promise.all(toDoomed);
    // The survivor's stalled check finds the jobs the dead replica held and runs them again, within seconds. Its
    // own clients may all be answered before that, so wait for the log line rather than expect it already.
    const marker = 'stopped renewing its lock; running it again';
    await waitFor(() => survivor.output().includes(marker), 10_000).catch(() => undefined);
    const rerun = survivor.output().split('\n').find((line) => line.includes(marker));
    expect(rerun).toBeDefined();
    const detectedMs = Date.parse(JSON.parse(rerun!).time) - killedAtWall;
    console.log(`replica loss: dead replica's jobs re-queued ${detectedMs} ms after kill -9; all 500 of the survivor's clients answered after ${allAnsweredMs.toFixed(0)} ms`);
    // At most lockDuration (3 s) after the dead replica's last renewal plus one stalled check (1 s), plus the delay of
    // the survivor's busy event loop; BullMQ's default is 30 s + 30 s.
    expect(detectedMs).toBeLessThan(6500);
    expect(allAnsweredMs).toBeLessThan(15000);
    // Results for the dead replica's clients went to a channel nobody listens on: nothing is held for them.
    await waitFor(async () => (await pendingOn(survivor)) === 0, 2000);
    await survivor.stop();
  });
});
