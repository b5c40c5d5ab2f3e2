/**
 * npm run bench [-- --model stub|heavy --seconds 5 --repeats 3 --connections 128 --rates 50,500,1000 --client wrk|autocannon --profile]
 *
 * End to end, in one run, with one client and one body: a throwaway redis-server, the gateway, the gateway with
 * MAX_BATCH_SIZE=1 (no batching) and a bare Fastify handler (the HTTP ceiling), each its own process.
 * - saturation: closed loop, the three servers interleaved `repeats` times, medians reported;
 * - open loop: the gateway at rising fixed rates until it saturates, with p50/p90/p99 and errors at each;
 * - on the stub model, the floor: bench:queue and bench:batcher run alone, added to the Nest stack's cost;
 * - with --profile, a CPU profile of the gateway's event-loop thread and Redis INFO commandstats during one
 *   more saturation run, summarised by function and by package.
 * Writes bench-results/gateway-<model>.json and bench-results/latency-<model>.svg.
 */
import { join } from 'node:path';
import Redis from 'ioredis';
import { loadConfig } from '@bales/config';
import { versionQueue } from '@bales/queue';
import { EXAMPLE_INPUT } from '../../test/support/example-input';
import { sample, scrape } from '../../test/support/observability';
import { TestRedis } from '../../test/support/redis-server';
import { latencyChart } from './chart';
import { argValue, machine, median, modelArg, prepareModel, resultsPath, round, thousands, writeResult } from './common';
import { Floor, measureFloor } from './floor';
import { CLOSED_LOOP_CLIENTS, ClosedLoopClient, LoadResult, OpenLoopResult, closedLoop, defaultClient, hasWrk, openLoop } from './load';
import { Server, cpuSeconds, machineTicks, startBareFastify, startBareNest, startGateway } from './processes';
import { summariseHeap, summariseProfile } from './profile';

const TARGETS = { saturation: 5000, ceilingRatio: 0.6, p99At1000: 12, heavyGain: 5 };
/** The offered rate of the P99 target, at which the baselines are measured open loop too. */
const TARGET_RATE = 1000;
const DEFAULT_RATES = { stub: [50, 500, 1000, 2000, 4000, 6000, 8000, 12000, 16000], heavy: [50, 200, 500, 1000, 2000, 4000, 8000] };

type Role = 'ceiling' | 'framework' | 'gateway' | 'noBatching';
const ROLE_NAMES: Record<Role, string> = {
  ceiling: 'bare Fastify (HTTP ceiling)',
  framework: 'Nest stack, no queue',
  gateway: 'gateway',
  noBatching: 'gateway, MAX_BATCH_SIZE=1',
};

/** The gateways' queue prefixes: BullMQ's job-id counter under each counts the jobs they wrote. */
const QUEUE_PREFIXES = { gateway: 'bench-batched', noBatching: 'bench-single' } as const;

interface SaturationRun extends LoadResult {
  /** CPU cores each process used during the run, and the cores left idle: where the two cores went. */
  cpu: Record<string, number>;
  /**
   * CPU time of the server's event-loop thread per answered request, in microseconds: what caps its throughput
   * on a whole core, and much less disturbed than req/s when other work shares the machine.
   */
  mainThreadUsPerRequest: number;
  /**
   * Queued requests per BullMQ job the gateway wrote during the run (the gateways only, and only when it wrote any):
   * what each job's cost is shared by.
   */
  rowsPerJob?: number;
  /** The share of requests the gateway took straight into its batches, never written to Redis (direct dispatch). */
  directShare?: number;
}

/** bales_direct_rows_total from a gateway's /metrics. */
const directRows = async (url: string) => sample(await scrape(url), 'bales_direct_rows_total');

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const pad = (s: string | number, n: number) => String(s).padStart(n);
const fmtMs = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const rows = (n: number) => `${n} ${n === 1 ? 'row' : 'rows'}`;
/** The median of the runs that have the figure, if any has it. */
const optionalMedian = (xs: (number | undefined)[]) => {
  const known = xs.filter((x): x is number => x !== undefined);
  return known.length ? median(known) : undefined;
};

async function main(): Promise<void> {
  const model = prepareModel(modelArg());
  const seconds = Number(argValue('seconds') ?? 5);
  const repeats = Number(argValue('repeats') ?? 3);
  const connections = Number(argValue('connections') ?? 128);
  const rates = argValue('rates')?.split(',').map(Number) ?? DEFAULT_RATES[model.choice];
  const profile = argValue('profile') === 'true';
  const client = (argValue('client') ?? defaultClient()) as ClosedLoopClient;
  if (!CLOSED_LOOP_CLIENTS.includes(client)) throw new Error(`--client must be one of ${CLOSED_LOOP_CLIENTS.join(', ')}`);
  if (client === 'wrk' && !hasWrk()) throw new Error('--client wrk: wrk is not installed (Debian: apt-get install wrk)');
  const body = JSON.stringify({ model_id: model.id, model_type: 'classification', priority: 2, payload: { input: EXAMPLE_INPUT } });

  log(`model ${model.id}; client ${client} for saturation, a paced client for open loop; ${machine().cores} cores shared with the client`);
  const redis = await TestRedis.start();
  const servers: Server[] = [];
  const redisClient = new Redis(redis.url);
  try {
    const redisPid = Number(/process_id:(\d+)/.exec(await redisClient.info('server'))![1]);
    const common = { REDIS_URL: redis.url, MODELS_DIR: model.modelsDir, DEFAULT_MODEL_ID: model.id };
    log('starting the gateway, the gateway with MAX_BATCH_SIZE=1, and a bare Fastify handler');
    const profilePath = resultsPath(`gateway-${model.choice}.cpuprofile`);
    const gateway = await startGateway('gateway', { ...common, QUEUE_PREFIX: QUEUE_PREFIXES.gateway, BENCH_CPU_PROFILE: profilePath }, body, profile ? ['-r', join(__dirname, 'cpu-profile.js')] : []);
    servers.push(gateway);
    const noBatching = await startGateway('no batching', { ...common, QUEUE_PREFIX: QUEUE_PREFIXES.noBatching, MAX_BATCH_SIZE: '1' }, body);
    servers.push(noBatching);
    const sample = await (await fetch(`${gateway.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).text();
    const ceiling = await startBareFastify(sample);
    servers.push(ceiling);
    const framework = await startBareNest(sample);
    servers.push(framework);
    const byRole: Record<Role, Server> = { ceiling, framework, gateway, noBatching };

    const saturate = async (role: Role, secs: number): Promise<SaturationRun> => {
      const server = byRole[role];
      // The event-loop thread is the one whose id is the process id; the rest are worker threads, V8 and libuv helpers.
      // The client is this process, or wrk, its child.
      const procs: [string, number, number?, boolean?][] = [
        [server.name, server.proc.pid!],
        [`${server.name} main thread`, server.proc.pid!, server.proc.pid!],
        ['redis', redisPid],
        ['client', process.pid, undefined, true],
      ];
      const jobIds = role === 'gateway' || role === 'noBatching' ? `${QUEUE_PREFIXES[role]}:${versionQueue('stub_v1', '1')}:id` : undefined;
      const jobsBefore = jobIds ? Number(await redisClient.get(jobIds)) : 0;
      const directBefore = jobIds ? await directRows(server.url) : 0;
      const before = procs.map(([, pid, tid, children]) => cpuSeconds(pid, tid, children));
      const ticksBefore = machineTicks();
      const started = performance.now();
      const result = await closedLoop(`${server.url}/infer`, body, connections, secs, client);
      const elapsed = (performance.now() - started) / 1000;
      const cpu = Object.fromEntries(procs.map(([name, pid, tid, children], i) => [name, round((cpuSeconds(pid, tid, children) - before[i]) / elapsed, 2)]));
      // Cores nobody used: what is left once the servers, Redis and the client have had theirs.
      const ticks = machineTicks();
      cpu.idle = round((machine().cores * (ticks.idle - ticksBefore.idle)) / (ticks.total - ticksBefore.total), 2);
      const jobs = jobIds ? Number(await redisClient.get(jobIds)) - jobsBefore : 0;
      const direct = jobIds ? Math.min(result.requests, (await directRows(server.url)) - directBefore) : 0;
      const rowsPerJob = jobs > 0 ? round((result.requests - direct) / jobs, 1) : undefined;
      const directShare = jobIds && result.requests > 0 ? round(direct / result.requests, 2) : undefined;
      return { ...result, cpu, mainThreadUsPerRequest: round((procs[1][0] in cpu ? cpu[procs[1][0]] : NaN) * 1e6 / result.throughput, 0), rowsPerJob, directShare };
    };

    log(`warm-up: 2 s closed loop on each server`);
    for (const role of Object.keys(byRole) as Role[]) await saturate(role, 2);

    const runs: Record<Role, SaturationRun[]> = { ceiling: [], framework: [], gateway: [], noBatching: [] };
    for (let r = 1; r <= repeats; r++) {
      for (const role of Object.keys(byRole) as Role[]) {
        const run = await saturate(role, seconds);
        runs[role].push(run);
        log(`saturation ${r}/${repeats} ${ROLE_NAMES[role]}: ${thousands(run.throughput)} req/s, p99 ${fmtMs(run.p99)} ms, errors ${run.errors}, main thread ${run.mainThreadUsPerRequest} us/req${run.directShare !== undefined ? `, ${run.directShare} of requests direct` : ''}${run.rowsPerJob ? `, ${rows(run.rowsPerJob)} per job` : ''}, CPU cores ${JSON.stringify(run.cpu)}`);
      }
    }
    const med = (role: Role) => {
      const list = runs[role];
      return { throughput: median(list.map((x) => x.throughput)), mainThreadUsPerRequest: median(list.map((x) => x.mainThreadUsPerRequest)), p50: median(list.map((x) => x.p50)), p90: median(list.map((x) => x.p90)), p99: median(list.map((x) => x.p99)), errors: list.reduce((n, x) => n + x.errors, 0), rowsPerJob: optionalMedian(list.map((x) => x.rowsPerJob)), directShare: optionalMedian(list.map((x) => x.directShare)) };
    };
    const saturation = { ceiling: med('ceiling'), framework: med('framework'), gateway: med('gateway'), noBatching: med('noBatching') };

    const open: OpenLoopResult[] = [];
    for (const rate of rates) {
      const result = await openLoop(`${gateway.url}/infer`, body, rate, seconds);
      open.push(result);
      log(`open loop ${thousands(rate)} req/s offered: ${thousands(result.throughput)} answered/s, p50 ${fmtMs(result.p50)} p90 ${fmtMs(result.p90)} p99 ${fmtMs(result.p99)} ms, errors ${result.errors}, avg batch ${result.avgBatch ?? '-'}`);
      // Past saturation the queue only grows; a higher rate would measure the backlog, not the gateway.
      if (result.throughput < 0.9 * rate || result.errors > 0.01 * result.requests) break;
      await new Promise((r) => setTimeout(r, 500));
    }

    // The same paced client at the target rate against the two baselines: the tail that HTTP, Node and the client
    // sharing these cores cause by themselves, before any queue.
    const openBaselines: Partial<Record<'ceiling' | 'framework', OpenLoopResult>> = {};
    for (const role of ['ceiling', 'framework'] as const) {
      const result = await openLoop(`${byRole[role].url}/infer`, body, TARGET_RATE, seconds);
      openBaselines[role] = result;
      log(`open loop ${thousands(TARGET_RATE)} req/s offered, ${ROLE_NAMES[role]}: p50 ${fmtMs(result.p50)} p90 ${fmtMs(result.p90)} p99 ${fmtMs(result.p99)} ms, errors ${result.errors}`);
    }

    // The least the parts below the HTTP stack cost alone, beside the Nest stack's cost from this run: the best
    // gateway / ceiling ratio a gateway built this way could reach (docs/benchmarks.md). The ratio target is the stub's.
    // Only the requests written to Redis pay the queue hop: those direct dispatch took skip it.
    let floor: (Floor & { queuedShare: number; totalUs: number; bestRatio: number; gatewayUsRatio: number }) | undefined;
    if (model.choice === 'stub') {
      log('floor: the queue hop alone (bench:queue) and the batcher alone (bench:batcher), each in its own process');
      const measured = await measureFloor(seconds / 5, repeats, loadConfig({ ...process.env, LOG_LEVEL: 'warn' }).MAX_BATCH_SIZE);
      const queuedShare = round(1 - (saturation.gateway.directShare ?? 0), 2);
      const totalUs = round(saturation.framework.mainThreadUsPerRequest + measured.queueUsPerRow * queuedShare + measured.batcherUsPerRequest, 1);
      floor = {
        ...measured,
        queuedShare,
        totalUs,
        bestRatio: round(saturation.ceiling.mainThreadUsPerRequest / totalUs, 2),
        gatewayUsRatio: round(saturation.ceiling.mainThreadUsPerRequest / saturation.gateway.mainThreadUsPerRequest, 2),
      };
    }

    let profiled: unknown;
    if (profile) {
      log(`profiling: ${seconds} s closed loop on the gateway with the CPU profiler on and Redis commandstats reset`);
      await redisClient.config('RESETSTAT');
      gateway.proc.kill('SIGUSR2');
      const run = await saturate('gateway', seconds);
      gateway.proc.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 2000));
      const stats = parseCommandStats(await redisClient.info('commandstats'), run.requests);
      const cpuProfile = summariseProfile(profilePath);
      const heap = summariseHeap(`${profilePath}.heap`);
      profiled = { run, redisCommandStats: stats, cpuProfile, heap };
      log(`profiled run: ${thousands(run.throughput)} req/s, CPU ${JSON.stringify(run.cpu)}`);
      console.log('\nGateway event-loop thread, share of CPU samples by area:');
      for (const a of cpuProfile.byArea.slice(0, 12)) console.log(`  ${pad(a.percent.toFixed(1), 5)}%  ${a.area}`);
      console.log('Top functions by self time:');
      for (const f of cpuProfile.top) console.log(`  ${pad(f.percent.toFixed(1), 5)}%  ${f.fn}  ${f.where}\n          called from ${f.calledFrom}`);
      console.log(`Allocation sites (sampled, ${heap.totalMb} MB allocated during the run, garbage included):`);
      for (const h of heap.top) console.log(`  ${pad(h.percent.toFixed(1), 5)}%  ${h.site}\n          called from ${h.calledFrom}`);
      console.log('Redis commands (calls per request, usec per call, share of Redis time):');
      for (const s of stats.slice(0, 10)) console.log(`  ${s.command.padEnd(14)} ${pad(s.callsPerRequest.toFixed(3), 7)} ${pad(s.usecPerCall.toFixed(1), 7)} ${pad(s.percent.toFixed(1), 5)}%`);
    }

    const g = saturation.gateway;
    const at1000 = open.find((o) => o.offered === TARGET_RATE);
    const ratioCeiling = g.throughput / saturation.ceiling.throughput;
    const ratioNoBatch = g.throughput / saturation.noBatching.throughput;
    const ratioFramework = saturation.framework.throughput / saturation.ceiling.throughput;
    const checks =
      model.choice === 'heavy'
        ? [{ measure: 'batching gain, gateway / MAX_BATCH_SIZE=1', target: `>= ${TARGETS.heavyGain}x`, value: `${ratioNoBatch.toFixed(2)}x`, pass: ratioNoBatch >= TARGETS.heavyGain }]
        : [
            { measure: 'saturation, zero errors', target: `>= ${thousands(TARGETS.saturation)} req/s`, value: `${thousands(g.throughput)} req/s, ${g.errors} errors`, pass: g.throughput >= TARGETS.saturation && g.errors === 0 },
            { measure: 'gateway / HTTP ceiling', target: `>= ${TARGETS.ceilingRatio}`, value: ratioCeiling.toFixed(2), pass: ratioCeiling >= TARGETS.ceilingRatio },
            { measure: 'P99 at 1,000 req/s offered', target: `<= ${TARGETS.p99At1000} ms`, value: at1000 ? `${fmtMs(at1000.p99)} ms` : 'not measured', pass: !!at1000 && at1000.p99 <= TARGETS.p99At1000 && at1000.errors === 0 },
          ];

    console.log(`\n=== End-to-end benchmark: ${model.id}, ${connections} connections, median of ${repeats} x ${seconds} s ===`);
    console.log(`${'server'.padEnd(30)}${pad('req/s', 9)}${pad('p50 ms', 9)}${pad('p90 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('main-thread CPU/req', 21)}`);
    for (const role of Object.keys(byRole) as Role[]) {
      const s = saturation[role];
      console.log(`${ROLE_NAMES[role].padEnd(30)}${pad(thousands(s.throughput), 9)}${pad(fmtMs(s.p50), 9)}${pad(fmtMs(s.p90), 9)}${pad(fmtMs(s.p99), 9)}${pad(s.errors, 8)}${pad(`${s.mainThreadUsPerRequest} us`, 21)}`);
    }
    console.log(`gateway / ceiling: ${ratioCeiling.toFixed(2)}    gateway / no batching: ${ratioNoBatch.toFixed(2)}    Nest stack / ceiling: ${ratioFramework.toFixed(2)}`);
    if (floor) {
      console.log(
        `floor: Nest stack ${saturation.framework.mainThreadUsPerRequest} us + queue hop ${floor.queueUsPerRow} us (${floor.rowsPerJob} rows per job) x ${floor.queuedShare} of requests queued + batcher ${floor.batcherUsPerRequest} us = ${floor.totalUs} us per request: ` +
          `best gateway / ceiling for this design ${floor.bestRatio.toFixed(2)} (the gateway, in event-loop CPU: ${floor.gatewayUsRatio.toFixed(2)}, ${saturation.gateway.directShare ?? 0} of its requests direct` +
          `${saturation.gateway.rowsPerJob ? `, its jobs carrying ${rows(saturation.gateway.rowsPerJob)}` : ', no job written'})`,
      );
    }
    for (const role of ['gateway', 'noBatching'] as const) {
      const split = Object.keys(runs[role][0].cpu).map((name) => `${name} ${median(runs[role].map((x) => x.cpu[name])).toFixed(2)}`);
      console.log(`CPU cores, ${ROLE_NAMES[role]} (medians): ${split.join(', ')}`);
    }
    console.log(`\nOpen loop, gateway (${seconds} s per rate; latency from each request's due time; gw = the gateway's own latency_ms):`);
    console.log(`${pad('offered/s', 10)}${pad('answered/s', 11)}${pad('p50 ms', 9)}${pad('p90 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('avg batch', 10)}${pad('gw mean', 9)}${pad('gw p99', 9)}${pad('queued p99', 11)}`);
    for (const o of open) {
      console.log(`${pad(thousands(o.offered), 10)}${pad(thousands(o.throughput), 11)}${pad(fmtMs(o.p50), 9)}${pad(fmtMs(o.p90), 9)}${pad(fmtMs(o.p99), 9)}${pad(o.errors, 8)}${pad(o.avgBatch ?? '-', 10)}${pad(o.gatewayLatencyMs?.toFixed(2) ?? '-', 9)}${pad(o.gatewayP99Ms?.toFixed(2) ?? '-', 9)}${pad(o.queuedP99Ms?.toFixed(2) ?? '-', 11)}`);
    }
    for (const role of ['ceiling', 'framework'] as const) {
      const o = openBaselines[role]!;
      console.log(`${pad(thousands(o.offered), 10)}${pad(thousands(o.throughput), 11)}${pad(fmtMs(o.p50), 9)}${pad(fmtMs(o.p90), 9)}${pad(fmtMs(o.p99), 9)}${pad(o.errors, 8)}   <- ${ROLE_NAMES[role]}, same client and rate`);
    }
    console.log('\nTargets:');
    for (const c of checks) console.log(`  ${c.measure.padEnd(44)} ${c.target.padEnd(16)} ${c.value.padEnd(26)} ${c.pass ? 'PASS' : 'FAIL'}`);

    const svg = writeResult(`latency-${model.choice}.svg`, latencyChart(`BALES ${model.id}: latency vs offered load (${machine().cores} cores, client on the same cores)`, open, model.choice === 'stub' ? TARGETS.p99At1000 : undefined));
    const file = writeResult(`gateway-${model.choice}.json`, {
      benchmark: 'gateway',
      date: new Date().toISOString(),
      machine: machine(),
      model: model.id,
      settings: { seconds, repeats, connections, client },
      saturation,
      ratios: { gatewayToCeiling: round(ratioCeiling, 3), gatewayToNoBatching: round(ratioNoBatch, 3), frameworkToCeiling: round(ratioFramework, 3) },
      runs,
      openLoop: open,
      openLoopBaselines: openBaselines,
      checks,
      floor,
      profile: profiled,
    });
    console.log(`\nwrote ${file} and ${svg}`);
  } finally {
    redisClient.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
  }
}

/** Redis INFO commandstats, per command: calls per HTTP request, microseconds per call, share of Redis time. */
function parseCommandStats(info: string, requests: number) {
  const rows = [...info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)].map((m) => ({ command: m[1], calls: Number(m[2]), usec: Number(m[3]) }));
  const total = rows.reduce((n, r) => n + r.usec, 0);
  return rows
    .sort((a, b) => b.usec - a.usec)
    .map((r) => ({ command: r.command, calls: r.calls, callsPerRequest: round(r.calls / requests, 3), usecPerCall: round(r.usec / r.calls, 2), percent: round((100 * r.usec) / total, 1) }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
