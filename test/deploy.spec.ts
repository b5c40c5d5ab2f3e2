import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, matchesGlob } from 'node:path';
import IORedis from 'ioredis';
import { parseAllDocuments } from 'yaml';
import { BalesConfig, loadConfig } from '@bales/config';
import { INPUT_128, ROOT, TestGateway, post, startGateway } from './support/gateway';
import { productionMallocEnv, productionNodeFlags } from './support/production-env';
import { TestRedis, freePort } from './support/redis-server';

// No Docker engine and no cluster here: these checks read the deployment files and hold them to the app itself.

const K8S = join(ROOT, 'deploy/k8s');
const DEFAULTS = new BalesConfig();
const SETTINGS = Object.keys(DEFAULTS);

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

function yamlDocuments(file: string): any[] {
  const docs = parseAllDocuments(read(file));
  if (!Array.isArray(docs)) return [];
  for (const doc of docs) if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
  return docs.map((d) => d.toJS());
}

interface Instruction {
  op: string;
  args: string;
}

/** The Dockerfile as stages of instructions: continuation lines joined, comments dropped. */
function dockerfileStages(): { name: string; instructions: Instruction[] }[] {
  const lines = read('Dockerfile')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const stages: { name: string; instructions: Instruction[] }[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line)!;
    if (op.toUpperCase() === 'FROM') stages.push({ name: / AS (\S+)$/i.exec(args)?.[1] ?? '', instructions: [] });
    stages.at(-1)!.instructions.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

const stages = dockerfileStages();
const runtime = stages.at(-1)!;
const inRuntime = (op: string) => runtime.instructions.filter((i) => i.op === op);
const dockerEnv = (stage: { instructions: Instruction[] }) =>
  Object.fromEntries(stage.instructions.filter((i) => i.op === 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])));

const kustomization = yamlDocuments('deploy/k8s/kustomization.yaml')[0];
const manifests = (kustomization.resources as string[]).flatMap((file) => yamlDocuments(join('deploy/k8s', file)));
const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/k8s`);
  return found;
};
const deployment = find('Deployment', 'bales');
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c: any) => c.name === 'bales');
const configMap = find('ConfigMap', 'bales-config');
/** The settings a pod runs with: the ConfigMap over the defaults, as envFrom gives them. */
const podConfig = loadConfig(configMap.data);

const compose = yamlDocuments('docker-compose.yml')[0];
/** Compose's own interpolation, for the ${VAR:-default} forms the file uses, with nothing set in the shell. */
const interpolate = (v: unknown) => String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1');
const composeEnv: Record<string, string> = Object.fromEntries(Object.entries(compose.services.bales.environment).map(([k, v]) => [k, interpolate(v)]));

function cpuCores(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function bytes(q: string): number {
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };
  const [, n, unit] = /^(\d+(?:\.\d+)?)([KMG]i?)?$/.exec(q)!;
  return Number(n) * (unit ? units[unit] : 1);
}

function containerPort(port: string | number): number {
  return typeof port === 'number' ? port : container.ports.find((p: any) => p.name === port).containerPort;
}

/** Runs a health check command the way Docker would, without blocking this process's gateway. Resolves its exit code. */
function run(command: string, args: string[], env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 20000 });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

describe('deployment files', () => {
  it('parse as YAML, and the kustomization lists every manifest in deploy/k8s and nothing missing', () => {
    const yamlFiles = readdirSync(K8S).filter((f) => f.endsWith('.yaml'));
    for (const f of yamlFiles) expect(() => yamlDocuments(join('deploy/k8s', f))).not.toThrow();
    expect(() => yamlDocuments('docker-compose.yml')).not.toThrow();
    expect([...kustomization.resources].sort()).toEqual(yamlFiles.filter((f) => f !== 'kustomization.yaml').sort());
    for (const m of manifests) {
      expect(m).toEqual(expect.objectContaining({ apiVersion: expect.any(String), kind: expect.any(String) }));
      expect(m.metadata.name).toMatch(/^[a-z0-9-]+$/);
    }
  });

  describe('every probe and health check, asked of the real gateway', () => {
    let redis: TestRedis;
    let gateway: TestGateway;
    let gatewayPort: string;

    beforeAll(async () => {
      redis = await TestRedis.start();
      gateway = await startGateway(redis.url);
      gatewayPort = new URL(gateway.url).port;
    });

    afterAll(async () => {
      await gateway?.close();
      await redis?.stop();
    });

    it('answers 200 on each Deployment probe path, on the port the pods serve', async () => {
      const probes = { startupProbe: '/health/live', livenessProbe: '/health/live', readinessProbe: '/health/ready' };
      for (const [probe, path] of Object.entries(probes)) {
        const { httpGet } = container[probe];
        expect(httpGet.path).toBe(path);
        expect((await fetch(gateway.url + httpGet.path)).status).toBe(200);
        expect(containerPort(httpGet.port)).toBe(podConfig.PORT);
      }
      // The same request on a route the app does not have is not 200, so the check above can fail.
      expect((await fetch(`${gateway.url}/health/nope`)).status).toBe(404);
      expect(containerPort(find('Service', 'bales').spec.ports[0].targetPort)).toBe(podConfig.PORT);
      expect(configMap.data.PORT).toBe(String(DEFAULTS.PORT));
    });

    it("the Dockerfile HEALTHCHECK asks /health/live: exit 0 from a live gateway, 1 when nothing listens, the config's port by default", async () => {
      const [healthcheck] = inRuntime('HEALTHCHECK');
      const command = /\bCMD\s+(.*)$/.exec(healthcheck.args)![1];
      expect(command).toContain('/health/live');
      expect(command).toContain(`process.env.PORT||${DEFAULTS.PORT}`);
      expect(inRuntime('EXPOSE').map((i) => i.args)).toEqual([String(DEFAULTS.PORT)]);
      // Docker runs a shell-form HEALTHCHECK with /bin/sh -c, in the container's environment.
      expect(await run('/bin/sh', ['-c', command], { PORT: gatewayPort })).toBe(0);
      expect(await run('/bin/sh', ['-c', command], { PORT: String(await freePort()) })).toBe(1);
    });

    it("the compose healthcheck asks /health/ready: exit 0 from a ready gateway, 1 when nothing listens, the config's port by default", async () => {
      const [form, cmd, ...args] = compose.services.bales.healthcheck.test as string[];
      expect(form).toBe('CMD');
      expect(args.join(' ')).toContain('/health/ready');
      expect(args.join(' ')).toContain(`process.env.PORT||${DEFAULTS.PORT}`);
      expect(compose.services.bales.ports).toEqual([`${DEFAULTS.PORT}:${DEFAULTS.PORT}`]);
      expect(await run(cmd, args, { PORT: gatewayPort })).toBe(0);
      expect(await run(cmd, args, { PORT: String(await freePort()) })).toBe(1);
    });

    it('while Redis is down the image stays healthy (nothing restarts it) and compose reports it not ready', async () => {
      const dockerCheck = /\bCMD\s+(.*)$/.exec(inRuntime('HEALTHCHECK')[0].args)![1];
      const [, cmd, ...args] = compose.services.bales.healthcheck.test as string[];
      await redis.stop();
      try {
        let ready = 200;
        for (let i = 0; i < 50 && ready === 200; i++) {
          await new Promise((r) => setTimeout(r, 100));
          ready = (await fetch(`${gateway.url}/health/ready`)).status;
        }
        expect(ready).toBe(503);
        expect(await run('/bin/sh', ['-c', dockerCheck], { PORT: gatewayPort })).toBe(0);
        expect(await run(cmd, args, { PORT: gatewayPort })).toBe(1);
      } finally {
        await redis.resume();
        // Back to ready before teardown, so closing the gateway does not race its reconnection.
        for (let i = 0; i < 100 && (await fetch(`${gateway.url}/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      }
    });
  });

  describe('QUEUE_PREFIX, for deployments sharing one Redis or a Redis Cluster', () => {
    let redis: TestRedis;
    const gateways: TestGateway[] = [];

    beforeAll(async () => {
      redis = await TestRedis.start();
    });

    afterAll(async () => {
      for (const gw of gateways) await gw.close();
      await redis?.stop();
    });

    it('keeps two deployments on one Redis apart, every key of each under its own {hash tag}', async () => {
      const start = async (env: Record<string, string>) => {
        const gw = await startGateway(redis.url, { THREAD_POOL_SIZE: '1', BATCHER_TIMEOUT_S: '1', ...env });
        gateways.push(gw);
        return gw;
      };
      const a = await start({ QUEUE_PREFIX: '{bales-a}' });
      // Accept-only gateways: their requests are answered only if a processor of the same prefix runs them.
      const aFront = await start({ QUEUE_PREFIX: '{bales-a}', PROCESSOR_ENABLED: 'false' });
      const bFront = await start({ QUEUE_PREFIX: '{bales-b}', PROCESSOR_ENABLED: 'false' });
      const request = { model_id: 'stub_v1', payload: { input: INPUT_128 } };

      expect((await post(`${a.url}/infer`, request)).status).toBe(200);
      expect((await post(`${aFront.url}/infer`, request)).status).toBe(200);
      // Same Redis, other prefix: deployment a's processor never takes b's work.
      expect((await post(`${bFront.url}/infer`, request)).status).toBe(504);

      const client = new IORedis(redis.url);
      try {
        const keys = await client.keys('*');
        expect(keys.some((k) => k.startsWith('{bales-a}:'))).toBe(true);
        expect(keys.some((k) => k.startsWith('{bales-b}:'))).toBe(true);
        // Redis Cluster hashes only the part in braces, so each deployment's keys share one slot.
        expect(keys.filter((k) => !/^\{bales-[ab]\}:/.test(k))).toEqual([]);
      } finally {
        client.disconnect();
      }
    });
  });

  describe('Dockerfile', () => {
    it('runs as the unprivileged bales user, by a number Kubernetes can verify, and Kubernetes runs it as the same', () => {
      const user = inRuntime('USER').at(-1)!.args;
      const [uid, gid] = user.split(':').map(Number);
      expect(uid).toBeGreaterThan(0);
      expect(gid).toBeGreaterThan(0);
      const creates = inRuntime('RUN').map((i) => i.args).join(' ');
      expect(creates).toMatch(new RegExp(`useradd [^&]*--uid ${uid} [^&]*\\bbales\\b`));
      expect(creates).toMatch(new RegExp(`groupadd [^&]*--gid ${gid} bales`));
      // Nothing after USER switches back to root.
      const last = runtime.instructions.findIndex((i) => i.op === 'USER' && i.args === user);
      expect(runtime.instructions.slice(last + 1).filter((i) => i.op === 'USER')).toEqual([]);
      expect(pod.securityContext).toEqual(expect.objectContaining({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid }));
    });

    it('is multi-stage: builds with dev dependencies, ships production ones only, never downloads CUDA, and carries the models', () => {
      expect(stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
      for (const s of stages) expect(s.instructions[0].args).toMatch(/^node:20-[a-z]+-slim AS /);
      for (const s of stages.filter((st) => st.instructions.some((i) => i.op === 'RUN' && i.args.includes('npm ci')))) {
        expect(dockerEnv(s).ONNXRUNTIME_NODE_INSTALL).toBe('skip');
      }
      const depsRun = stages[1].instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
      expect(depsRun).toContain('npm ci --omit=dev');
      const copies = inRuntime('COPY').map((i) => i.args);
      expect(copies).toEqual(expect.arrayContaining(['--from=deps /app/node_modules ./node_modules', '--from=build /app/dist ./dist', 'models ./models']));
      expect(runtime.instructions.some((i) => i.op === 'RUN' && i.args.includes('npm '))).toBe(false);
      expect(dockerEnv(runtime).MODELS_DIR).toBe('/app/models');
      // Bounds the native memory released ONNX sessions leave behind (README, Serving your own models).
      expect(productionMallocEnv()).toEqual({ MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '1048576', MALLOC_TRIM_THRESHOLD_: '33554432' });
      expect(dockerEnv(runtime)).toMatchObject(productionMallocEnv());
      expect(runtime.instructions.find((i) => i.op === 'WORKDIR')!.args).toBe('/app');
      expect(podConfig.MODELS_DIR).toBe(dockerEnv(runtime).MODELS_DIR);
    });

    it('starts the entry point nest build writes, from the build stage that runs it', () => {
      const nest = JSON.parse(read('nest-cli.json'));
      const entry = `dist/${nest.projects.gateway.entryFile}.js`;
      // The image, start:prod and npm start run node with the same V8 flags: the young generation (README, Memory).
      expect(productionNodeFlags()).toEqual(['--max-semi-space-size=64']);
      expect(JSON.parse(inRuntime('CMD')[0].args)).toEqual(['node', ...productionNodeFlags(), entry]);
      expect(stages[0].instructions.map((i) => i.args)).toContain('npx nest build');
      const scripts = JSON.parse(read('package.json')).scripts;
      expect(scripts['start:prod']).toContain(`node ${productionNodeFlags().join(' ')} ${entry}`);
      expect(scripts.start).toContain(`node ${productionNodeFlags().join(' ')} scripts/start.js`);
      // npm start runs with the same glibc settings as start:prod and the image.
      for (const [name, value] of Object.entries(productionMallocEnv())) expect(scripts.start).toContain(` ${name}=${value} `);
    });

    it('keeps only the ONNX Runtime binaries of the platform it is built for', () => {
      const prune = stages[1].instructions.find((i) => i.op === 'RUN' && i.args.includes('onnxruntime-node/bin'))!.args;
      const dir = mkdtempSync(join(tmpdir(), 'bales-ort-prune-'));
      try {
        // npm cannot run here (no registry); a stand-in leaves the package tree the test lays out untouched.
        mkdirSync(join(dir, 'bin'));
        writeFileSync(join(dir, 'bin', 'npm'), '#!/bin/sh\nexit 0\n');
        chmodSync(join(dir, 'bin', 'npm'), 0o755);
        const napi = join(dir, 'node_modules/onnxruntime-node/bin/napi-v6');
        const platforms = ['darwin/arm64', 'linux/arm64', 'linux/x64', 'win32/arm64', 'win32/x64'];
        for (const p of platforms) {
          mkdirSync(join(napi, p), { recursive: true });
          writeFileSync(join(napi, p, 'onnxruntime_binding.node'), '');
        }
        const result = spawnSync('/bin/sh', ['-c', `cd ${dir} && ${prune}`], { env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` }, encoding: 'utf8' });
        expect(result.stderr).toBe('');
        expect(result.status).toBe(0);
        const kept = readdirSync(napi).flatMap((os) => readdirSync(join(napi, os)).map((arch) => `${os}/${arch}`));
        expect(kept).toEqual([`${process.platform}/${process.arch}`]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('installs every package the gateway imports at run time with npm ci --omit=dev', () => {
      // What `npm ci --omit=dev` installs: the lock file's top-level packages not marked dev.
      const lock = JSON.parse(read('package-lock.json'));
      const installed = (name: string) => lock.packages[`node_modules/${name}`] && !lock.packages[`node_modules/${name}`].dev;
      const sources = (dir: string): string[] =>
        readdirSync(join(ROOT, dir)).flatMap((f) => {
          const rel = join(dir, f);
          if (statSync(join(ROOT, rel)).isDirectory()) return sources(rel);
          return f.endsWith('.ts') && !f.endsWith('.spec.ts') ? [rel] : [];
        });
      const imported = new Set<string>();
      for (const file of [...sources('apps'), ...sources('libs')]) {
        // Type-only imports vanish from the compiled code, so they need no package at run time.
        const statements = /(?:^\s*(?:import|export)\s+(?!type\b)(?:[^;']*?\sfrom\s+)?|require\(|import\()'([^'.][^']*)'/gm;
        for (const m of read(file).matchAll(statements)) {
          const spec = m[1];
          if (spec.startsWith('node:') || builtinModules.includes(spec) || spec.startsWith('@bales/')) continue;
          imported.add(spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/'));
        }
      }
      expect([...imported]).toEqual(expect.arrayContaining(['@nestjs/core', 'bullmq', 'onnxruntime-node']));
      expect([...imported].filter((p) => !installed(p)).sort()).toEqual([]);
      // A dev-only package is not installed: the check above can fail.
      expect(installed('yaml')).toBe(false);
    });

    it('builds from a context that holds what it copies and leaves out .env, node_modules and dist', () => {
      const patterns = read('.dockerignore')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'));
      const ignored = (path: string) => {
        const parts = path.split('/');
        return parts.some((_, i) => patterns.some((p) => matchesGlob(parts.slice(0, i + 1).join('/'), p)));
      };
      const sources = stages
        .flatMap((s) => s.instructions)
        .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
      expect(sources).toEqual(expect.arrayContaining(['package.json', 'apps', 'libs', 'models']));
      for (const s of sources) {
        expect({ source: s, ignored: ignored(s) }).toEqual({ source: s, ignored: false });
        expect(existsSync(join(ROOT, s))).toBe(true);
      }
      for (const p of ['.env', 'node_modules', 'dist', '.git', 'libs/config/src/bales-config.spec.ts']) expect({ p, ignored: ignored(p) }).toEqual({ p, ignored: true });
      expect(ignored('libs/config/src/bales-config.ts')).toBe(false);
      expect(ignored('models/stub_v1/model.onnx')).toBe(false);
    });
  });

  describe('docker-compose.yml', () => {
    it('gives the gateway only settings the config accepts, with values it accepts', () => {
      expect(Object.keys(composeEnv).filter((k) => !SETTINGS.includes(k))).toEqual([]);
      expect(() => loadConfig(composeEnv)).not.toThrow();
      const config = loadConfig(composeEnv);
      expect(new URL(config.REDIS_URL).hostname).toBe('redis');
      expect(config.THREAD_POOL_SIZE * config.ORT_INTRA_OP_THREADS).toBeLessThanOrEqual(Number(compose.services.bales.deploy.resources.limits.cpus));
    });

    it('runs an ephemeral Redis with a healthcheck, and starts the gateway only once it is healthy, within 4 CPUs and 2G', () => {
      const { redis, bales } = compose.services;
      expect(redis.command).toEqual(['redis-server', '--save', '', '--appendonly', 'no']);
      expect(redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
      expect(bales.depends_on.redis.condition).toBe('service_healthy');
      expect(bales.deploy.resources.limits).toEqual({ cpus: '4.0', memory: '2G' });
    });

    it('lets accepted requests finish before Docker kills the gateway, on a read-only filesystem', () => {
      const { bales } = compose.services;
      const grace = Number(/^(\d+)s$/.exec(bales.stop_grace_period)![1]);
      expect(grace).toBeGreaterThan(loadConfig(composeEnv).SHUTDOWN_TIMEOUT_S);
      expect(bales.read_only).toBe(true);
      expect(bales.tmpfs).toContain('/tmp');
    });
  });

  describe('Kubernetes manifests', () => {
    it('configure only settings the config accepts, with values it accepts, and take ADMIN_TOKEN from a Secret', () => {
      expect(Object.keys(configMap.data).filter((k) => !SETTINGS.includes(k))).toEqual([]);
      expect(configMap.data.ADMIN_TOKEN).toBeUndefined();
      const [generator] = kustomization.secretGenerator;
      expect(generator).toEqual({ name: 'bales-secrets', envs: ['secrets.env'] });
      const example = Object.fromEntries(
        read('deploy/k8s/secrets.env.example')
          .split('\n')
          .filter((l) => /^\w+=/.test(l))
          .map((l) => l.split(/=(.*)/s).slice(0, 2)),
      );
      expect(Object.keys(example)).toEqual(['ADMIN_TOKEN']);
      expect(() => loadConfig(example)).not.toThrow();
      // The real token never reaches git.
      expect(read('deploy/k8s/.gitignore').split('\n')).toContain('secrets.env');
      // envFrom: later sources win, so a REDIS_URL in the Secret overrides the ConfigMap's.
      expect(container.envFrom).toEqual([{ configMapRef: { name: 'bales-config' } }, { secretRef: { name: 'bales-secrets' } }]);
    });

    it('run at least 2 replicas with a preStop pause and a grace period above it plus SHUTDOWN_TIMEOUT_S', () => {
      expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
      const [cmd, seconds] = container.lifecycle.preStop.exec.command;
      expect(cmd).toBe('sleep');
      expect(Number(seconds)).toBeGreaterThan(0);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Number(seconds) + podConfig.SHUTDOWN_TIMEOUT_S);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    });

    it('request one CPU per inference thread (THREAD_POOL_SIZE x ORT_INTRA_OP_THREADS), with limits for CPU and memory', () => {
      const { requests, limits } = container.resources;
      expect(podConfig.ORT_INTRA_OP_THREADS).toBeGreaterThan(0);
      expect(cpuCores(requests.cpu)).toBe(podConfig.THREAD_POOL_SIZE * podConfig.ORT_INTRA_OP_THREADS);
      expect(cpuCores(limits.cpu)).toBeGreaterThanOrEqual(cpuCores(requests.cpu));
      expect(bytes(limits.memory)).toBeGreaterThanOrEqual(bytes(requests.memory));
    });

    it('run as non-root on a read-only root filesystem, with /tmp writable and no privilege escalation', () => {
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(container.securityContext).toEqual(expect.objectContaining({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }));
      const tmp = container.volumeMounts.find((v: any) => v.mountPath === '/tmp');
      expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
      // Without this ONNX Runtime writes a telemetry database under $HOME and logs under /tmp.
      expect(dockerEnv(runtime).ORT_DISABLE_TELEMETRY).toBe('1');
      // The documented way to bring your own models: a volume mounted where MODELS_DIR would point.
      expect(read('deploy/k8s/deployment.yaml')).toMatch(/#\s+- name: models\n\s+#\s+mountPath: \/models/);
    });

    it('select the gateway pods from the Service, the HPA and the PodDisruptionBudget', () => {
      const labels = deployment.spec.template.metadata.labels;
      expect(labels).toEqual(expect.objectContaining(deployment.spec.selector.matchLabels));
      expect(labels).toEqual(expect.objectContaining(find('Service', 'bales').spec.selector));

      const pdb = find('PodDisruptionBudget', 'bales');
      expect(labels).toEqual(expect.objectContaining(pdb.spec.selector.matchLabels));
      expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);

      const hpa = find('HorizontalPodAutoscaler', 'bales');
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'bales' });
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
      expect(hpa.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } }]);
      // Scaling on queue depth is documented beside it, on the metric the gateway exports.
      const hpaText = read('deploy/k8s/hpa.yaml');
      expect(hpaText).toContain('prometheus-adapter');
      expect(hpaText).toMatch(/#\s+name: bales_queue_depth/);
    });

    it('include an ephemeral development Redis that the ConfigMap points at', () => {
      const redis = find('Deployment', 'redis');
      const service = find('Service', 'redis');
      const [redisContainer] = redis.spec.template.spec.containers;
      expect(redisContainer.args).toEqual(['--save', '', '--appendonly', 'no']);
      expect(redisContainer.readinessProbe.exec.command).toEqual(['redis-cli', 'ping']);
      const url = new URL(podConfig.REDIS_URL);
      expect(url.hostname).toBe(service.metadata.name);
      expect(Number(url.port)).toBe(service.spec.ports[0].port);
      expect(redis.spec.template.metadata.labels).toEqual(expect.objectContaining(service.spec.selector));
      expect(read('deploy/k8s/redis.yaml')).toMatch(/managed Redis/);
    });
  });
});
