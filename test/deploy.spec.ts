import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, matchesGlob } from 'node:path';
import { loadConfig } from '@bales/config';
import {
  K8S,
  ROOT,
  SETTINGS,
  compose,
  composeEnv,
  configMap,
  container,
  deployment,
  dockerEnv,
  find,
  inRuntime,
  kustomization,
  manifests,
  pod,
  podConfig,
  read,
  runtime,
  stages,
  yamlDocuments,
} from './support/deployment-files';
import { productionMallocEnv, productionNodeFlags } from './support/production-env';

// The gateway-backed checks of the same files (probes, health checks, QUEUE_PREFIX) are in deploy.e2e-spec.ts.

function cpuCores(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function bytes(q: string): number {
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };
  const [, n, unit] = /^(\d+(?:\.\d+)?)([KMG]i?)?$/.exec(q)!;
  return Number(n) * (unit ? units[unit] : 1);
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
      for (const s of stages) expect(s.instructions[0].args).toMatch(/^node:24-[a-z]+-slim AS /);
      for (const s of stages.filter((st) => st.instructions.some((i) => i.op === 'RUN' && i.args.includes('npm ci')))) {
        expect(dockerEnv(s).ONNXRUNTIME_NODE_INSTALL).toBe('skip');
      }
      const depsRun = stages[1].instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
      expect(depsRun).toContain('npm ci --omit=dev');
      const copies = inRuntime('COPY').map((i) => i.args);
      expect(copies).toEqual(expect.arrayContaining(['--from=deps /app/node_modules ./node_modules', '--from=build /app/dist ./dist', 'models ./models']));
      expect(runtime.instructions.some((i) => i.op === 'RUN' && i.args.includes('npm '))).toBe(false);
      expect(dockerEnv(runtime).MODELS_DIR).toBe('/app/models');
      // Bounds the native memory released ONNX sessions leave behind (docs/operations.md, Memory).
      expect(productionMallocEnv()).toEqual({ MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '1048576', MALLOC_TRIM_THRESHOLD_: '33554432' });
      expect(dockerEnv(runtime)).toMatchObject(productionMallocEnv());
      expect(runtime.instructions.find((i) => i.op === 'WORKDIR')!.args).toBe('/app');
      expect(podConfig.MODELS_DIR).toBe(dockerEnv(runtime).MODELS_DIR);
    });

    it('starts the entry point nest build writes, from the build stage that runs it', () => {
      const nest = JSON.parse(read('nest-cli.json'));
      const entry = `dist/${nest.projects.gateway.entryFile}.js`;
      // The image, start:prod and npm start run node with the same V8 flags: the young generation (docs/operations.md, Memory).
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
