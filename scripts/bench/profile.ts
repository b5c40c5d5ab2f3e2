/** Summarises a V8 CPU profile: where the event-loop thread of the gateway spends its samples. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { ROOT, round } from './common';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  samples: number;
  /** Share of samples (percent) by where the code lives: a package, node internals, BALES sources, GC, idle. */
  byArea: { area: string; percent: number }[];
  /** Functions with the most self time. */
  top: { fn: string; where: string; percent: number; calledFrom: string }[];
}

/** Where a frame's code lives: `bales`, a package name, `node`, or V8's own pseudo-frames. */
function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  return url.includes(ROOT) ? 'bales' : url;
}

export function summariseProfile(path: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const frame = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    return `${functionName || '(anonymous)'} ${url ? `${relative(ROOT, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : ''}`.trim();
  };
  /** The nearest two callers, which name the deprecated or native function a wrapper stands for. */
  const callers = (id: number) => {
    const chain: string[] = [];
    for (let p = parentOf.get(id); p !== undefined && chain.length < 2; p = parentOf.get(p)) chain.push(frame(p));
    return chain.join(' < ');
  };
  // Samples under the profiler's own preload are the measurement, not the gateway.
  const own = new Set<number>();
  const mark = (id: number) => {
    own.add(id);
    for (const c of byId.get(id)!.children ?? []) mark(c);
  };
  for (const n of profile.nodes) if (n.callFrame.url.endsWith('scripts/bench/cpu-profile.js') && !own.has(n.id)) mark(n.id);
  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    if (!own.has(id)) selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfTime.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; t: number; from: Map<string, number> }>();
  for (const [id, t] of selfTime) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const fn = functionName || '(anonymous)';
    const a = area(url, fn);
    areas.set(a, (areas.get(a) ?? 0) + t);
    const where = url ? `${relative(ROOT, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : a;
    const key = `${fn} ${where}`;
    const entry = fns.get(key) ?? { fn, where, t: 0, from: new Map<string, number>() };
    entry.t += t;
    const from = callers(id);
    entry.from.set(from, (entry.from.get(from) ?? 0) + t);
    fns.set(key, entry);
  }
  const pct = (t: number) => round((100 * t) / total, 1);
  return {
    samples: profile.samples.length,
    byArea: [...areas].sort((a, b) => b[1] - a[1]).map(([a, t]) => ({ area: a, percent: pct(t) })),
    top: [...fns.values()].sort((a, b) => b.t - a.t).slice(0, topN).map((e) => ({ fn: e.fn, where: e.where, percent: pct(e.t), calledFrom: [...e.from].sort((a, b) => b[1] - a[1])[0][0] })),
  };
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Where the bytes the GC has to collect are allocated: the top sites of a sampling heap profile, with their callers. */
export function summariseHeap(path: string, topN = 10): { totalMb: number; top: { site: string; calledFrom: string; percent: number }[] } {
  const head = (JSON.parse(readFileSync(path, 'utf8')) as { head: HeapNode }).head;
  const sites = new Map<string, number>();
  let total = 0;
  const name = (n: HeapNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    return `${functionName || '(anonymous)'} ${url ? `${relative(ROOT, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : ''}`.trim();
  };
  const walk = (n: HeapNode, stack: string[]) => {
    const here = [...stack, name(n)];
    if (n.selfSize > 0) {
      total += n.selfSize;
      const key = `${here[here.length - 1]}\u0000${here.slice(-3, -1).reverse().join(' < ')}`;
      sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, here);
  };
  walk(head, []);
  return {
    totalMb: round(total / 1048576, 1),
    top: [...sites]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([k, size]) => ({ site: k.split('\u0000')[0], calledFrom: k.split('\u0000')[1], percent: round((100 * size) / total, 1) })),
  };
}
