/** A hand-written SVG line chart of latency percentiles against offered load (log-log), with no dependency. */
import type { OpenLoopResult } from './load';

const W = 720;
const H = 420;
const M = { left: 70, right: 150, top: 40, bottom: 55 };
const SERIES = [
  { key: 'p50', color: '#2b8a3e' },
  { key: 'p90', color: '#e67700' },
  { key: 'p99', color: '#c92a2a' },
] as const;

const decades = (lo: number, hi: number) => {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) ticks.push(m * 10 ** e);
  return ticks.filter((t) => t >= lo && t <= hi);
};
const label = (n: number) => (n >= 1000 ? `${n / 1000}k` : String(n));

export function latencyChart(title: string, points: OpenLoopResult[], targetMs?: number): string {
  const pts = points.filter((p) => Number.isFinite(p.p99) && p.p50 > 0);
  const xs = pts.map((p) => p.offered);
  const ys = pts.flatMap((p) => [p.p50, p.p99]).concat(targetMs ? [targetMs] : []);
  const [x0, x1] = [10 ** Math.floor(Math.log10(Math.min(...xs))), 10 ** Math.ceil(Math.log10(Math.max(...xs)))];
  const [y0, y1] = [10 ** Math.floor(Math.log10(Math.min(...ys))), 10 ** Math.ceil(Math.log10(Math.max(...ys)))];
  const px = (x: number) => M.left + ((Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (H - M.top - M.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - M.right / 2 + M.left / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${title}</text>`,
  ];
  for (const t of decades(x0, x1)) {
    out.push(`<line x1="${px(t)}" y1="${M.top}" x2="${px(t)}" y2="${H - M.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  for (const t of decades(y0, y1)) {
    out.push(`<line x1="${M.left}" y1="${py(t)}" x2="${W - M.right}" y2="${py(t)}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 6}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 14}" text-anchor="middle">offered load (req/s, open loop)</text>`);
  out.push(`<text transform="translate(18 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle">latency (ms)</text>`);
  if (targetMs) {
    out.push(`<line x1="${M.left}" y1="${py(targetMs)}" x2="${W - M.right}" y2="${py(targetMs)}" stroke="#555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${W - M.right + 8}" y="${py(targetMs) + 4}" fill="#555">P99 target ${targetMs} ms</text>`);
  }
  SERIES.forEach(({ key, color }, i) => {
    const d = pts.map((p, j) => `${j ? 'L' : 'M'}${px(p.offered).toFixed(1)},${py(p[key]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) out.push(`<circle cx="${px(p.offered).toFixed(1)}" cy="${py(p[key]).toFixed(1)}" r="3" fill="${color}"><title>${p.offered} req/s: ${key} ${p[key]} ms</title></circle>`);
    out.push(`<line x1="${W - M.right + 8}" y1="${M.top + 10 + i * 18}" x2="${W - M.right + 28}" y2="${M.top + 10 + i * 18}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${W - M.right + 34}" y="${M.top + 14 + i * 18}">${key}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
