/**
 * Preloaded into the gateway by `npm run bench -- --profile` (node -r): the first SIGUSR2 starts the V8 CPU
 * profiler and the sampling heap profiler (counting garbage too, to find what feeds the GC), the second writes
 * both to BENCH_CPU_PROFILE and BENCH_CPU_PROFILE.heap. This profiles only the saturation phase, which
 * `node --cpu-prof` cannot do, and needs no change to the gateway.
 */
const { Session } = require('node:inspector');
const { writeFileSync } = require('node:fs');

const session = new Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
let running = false;
process.on('SIGUSR2', async () => {
  running = !running;
  if (running) {
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 500 });
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    await post('Profiler.start');
    return;
  }
  const { profile } = await post('Profiler.stop');
  const heap = await post('HeapProfiler.stopSampling');
  writeFileSync(process.env.BENCH_CPU_PROFILE, JSON.stringify(profile));
  writeFileSync(`${process.env.BENCH_CPU_PROFILE}.heap`, JSON.stringify(heap.profile));
});
