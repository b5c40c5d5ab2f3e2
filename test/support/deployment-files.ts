import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { BalesConfig, loadConfig } from '@bales/config';

// No Docker engine and no cluster here: the deployment files are read and parsed, to be held to the app itself.

export const ROOT = join(__dirname, '..', '..');
export const K8S = join(ROOT, 'deploy/k8s');
export const DEFAULTS = new BalesConfig();
export const SETTINGS = Object.keys(DEFAULTS);

export const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

export function yamlDocuments(file: string): any[] {
  const docs = parseAllDocuments(read(file));
  if (!Array.isArray(docs)) return [];
  for (const doc of docs) if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
  return docs.map((d) => d.toJS());
}

export interface Instruction {
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

export const stages = dockerfileStages();
export const runtime = stages.at(-1)!;
export const inRuntime = (op: string) => runtime.instructions.filter((i) => i.op === op);
export const dockerEnv = (stage: { instructions: Instruction[] }) =>
  Object.fromEntries(stage.instructions.filter((i) => i.op === 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])));

export const kustomization = yamlDocuments('deploy/k8s/kustomization.yaml')[0];
export const manifests = (kustomization.resources as string[]).flatMap((file) => yamlDocuments(join('deploy/k8s', file)));
export const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/k8s`);
  return found;
};
export const deployment = find('Deployment', 'bales');
export const pod = deployment.spec.template.spec;
export const container = pod.containers.find((c: any) => c.name === 'bales');
export const configMap = find('ConfigMap', 'bales-config');
/** The settings a pod runs with: the ConfigMap over the defaults, as envFrom gives them. */
export const podConfig = loadConfig(configMap.data);

export const compose = yamlDocuments('docker-compose.yml')[0];
/** Compose's own interpolation, for the ${VAR:-default} forms the file uses, with nothing set in the shell. */
const interpolate = (v: unknown) => String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1');
export const composeEnv: Record<string, string> = Object.fromEntries(Object.entries(compose.services.bales.environment).map(([k, v]) => [k, interpolate(v)]));

/** The port number a container port reference names: a number as it is, a name through the container's ports. */
export function containerPort(port: string | number): number {
  return typeof port === 'number' ? port : container.ports.find((p: any) => p.name === port).containerPort;
}
