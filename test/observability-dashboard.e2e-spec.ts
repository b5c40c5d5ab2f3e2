import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT, ownGateway } from './support/gateway';
import { families, scrape } from './support/observability';

const dashboard = JSON.parse(readFileSync(join(ROOT, 'monitoring/grafana/dashboards/bales.json'), 'utf8'));
const panels: { title: string; targets: { expr: string }[] }[] = dashboard.panels;
const exprs = panels.flatMap((p) => p.targets.map((t) => t.expr));
// Grafana fills $__rate_interval in; promtool needs a plain duration.
const asPromQl = (expr: string) => expr.replaceAll('$__rate_interval', '1m');

describe('the monitoring stack: Prometheus scrape config, Grafana provisioning and dashboard', () => {
  const own = ownGateway();

  it('has the panels operators need', () => {
    expect(panels.map((p) => p.title)).toEqual(
      expect.arrayContaining(['Throughput by status', 'Latency p50 / p99', 'Batch size distribution', 'Queue depth by priority', 'Queue wait vs inference time', 'Model reloads']),
    );
  });

  it('queries only metrics the gateway exports', async () => {
    const exported = new Set(families(await scrape(own.gw.url)));
    const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:bales|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1])));
    expect(named.size).toBeGreaterThanOrEqual(8);
    // A histogram is exported as one family; its series carry _bucket, _sum and _count.
    const family = (name: string) => (exported.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));
    expect([...named].filter((n) => !exported.has(family(n)))).toEqual([]);
  });

  it('has queries promtool parses as PromQL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bales-rules-'));
    try {
      const rules = { groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: asPromQl(expr) })) }] };
      writeFileSync(join(dir, 'rules.yml'), JSON.stringify(rules));
      const run = spawnSync('/usr/bin/promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
      expect(`${run.stdout}${run.stderr}`).toContain(`SUCCESS: ${exprs.length} rules found`);
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has a Prometheus config promtool accepts, scraping the compose gateway', () => {
    const path = join(ROOT, 'monitoring/prometheus/prometheus.yml');
    const run = spawnSync('/usr/bin/promtool', ['check', 'config', path], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const job = parse(readFileSync(path, 'utf8')).scrape_configs.find((j: { job_name: string }) => j.job_name === 'bales');
    expect(job).toMatchObject({ metrics_path: '/metrics', static_configs: [{ targets: ['bales:8000'] }] });
  });

  it("runs Prometheus and Grafana in docker-compose's monitoring profile, mounting files that exist", () => {
    const { services } = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'));
    for (const name of ['prometheus', 'grafana']) {
      expect(services[name].profiles).toEqual(['monitoring']);
      for (const volume of services[name].volumes as string[]) expect(existsSync(join(ROOT, volume.split(':')[0]))).toBe(true);
    }
    const datasource = parse(readFileSync(join(ROOT, 'monitoring/grafana/provisioning/datasources/prometheus.yml'), 'utf8')).datasources[0];
    expect(datasource).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', uid: 'prometheus' });
    const provider = parse(readFileSync(join(ROOT, 'monitoring/grafana/provisioning/dashboards/bales.yml'), 'utf8')).providers[0];
    expect(services.grafana.volumes).toContain(`./monitoring/grafana/dashboards:${provider.options.path}:ro`);
    expect(panels.every((p) => (p as { datasource?: { uid: string } }).datasource?.uid === datasource.uid)).toBe(true);
  });
});
