import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '@gguf-gateway/testkit';

// Reads the Grafana dashboards and provisioning under infra/grafana, and expands Grafana's SQL
// macros the way its Postgres datasource does, so the tests run exactly the SQL a user's panel runs.

export const GRAFANA_DIR = join(repoRoot, 'infra/grafana');

export interface DatasourceRef {
  type?: string;
  uid: string;
}

export interface Target {
  refId: string;
  datasource?: DatasourceRef;
  expr?: string;
  rawSql?: string;
  format?: string;
}

export interface Panel {
  id: number;
  title: string;
  type: string;
  datasource?: DatasourceRef;
  targets?: Target[];
}

export interface TemplateVariable {
  name: string;
  type: string;
  datasource?: DatasourceRef;
  query: string;
}

export interface Dashboard {
  file: string;
  uid: string;
  title: string;
  time: { from: string; to: string };
  templating: { list: TemplateVariable[] };
  panels: Panel[];
}

export function loadDashboards(): Dashboard[] {
  const dir = join(GRAFANA_DIR, 'dashboards');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, ...(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Omit<Dashboard, 'file'>) }));
}

/** The datasources provisioning defines, by uid. */
export function provisionedDatasources(): Map<string, string> {
  const dir = join(GRAFANA_DIR, 'provisioning/datasources');
  const byUid = new Map<string, string>();
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    const doc = parse(readFileSync(join(dir, file), 'utf8')) as { datasources: { uid: string; type: string }[] };
    for (const ds of doc.datasources) byUid.set(ds.uid, ds.type);
  }
  return byUid;
}

export interface PanelTarget {
  dashboard: Dashboard;
  panel: Panel;
  target: Target;
  datasource: DatasourceRef;
}

export function panelTargets(dashboards: Dashboard[]): PanelTarget[] {
  return dashboards.flatMap((dashboard) =>
    dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        dashboard,
        panel,
        target,
        datasource: (target.datasource ?? panel.datasource)!,
      })),
    ),
  );
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `now-6h` as a Date. */
export function relativeTime(expr: string, now = new Date()): Date {
  if (expr === 'now') return now;
  const match = /^now-(\d+)([smhd])$/.exec(expr);
  if (!match) throw new Error(`unsupported time expression ${expr}`);
  return new Date(now.getTime() - Number(match[1]) * UNIT_MS[match[2]!]!);
}

function seconds(interval: string): number {
  const match = /^(\d+)([smhd])$/.exec(interval);
  if (!match) throw new Error(`unsupported interval ${interval}`);
  return (Number(match[1]) * UNIT_MS[match[2]!]!) / 1000;
}

export interface SqlContext {
  from: Date;
  to: Date;
  interval: string;
  /** Values of each template variable (Grafana's "All" of a multi-value variable). */
  variables: Record<string, string[]>;
}

const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** Grafana's Postgres macros and template variables, expanded as its datasource does. */
export function expandSql(sql: string, ctx: SqlContext): string {
  const from = quote(ctx.from.toISOString());
  const to = quote(ctx.to.toISOString());
  let out = sql
    .replace(/\$__timeGroupAlias\(\s*([^,]+?)\s*,\s*([^)]+?)\s*\)/g, (_m, col: string, interval: string) => {
      const step = seconds(interval === '$__interval' ? ctx.interval : interval);
      return `floor(extract(epoch from ${col})/${step})*${step} AS "time"`;
    })
    .replace(/\$__timeFilter\(\s*([^)]+?)\s*\)/g, (_m, col: string) => `${col} BETWEEN ${from} AND ${to}`)
    .replace(/\$__interval\b/g, ctx.interval);
  for (const [name, values] of Object.entries(ctx.variables)) {
    out = out.replace(new RegExp(`\\$${name}\\b|\\$\\{${name}\\}`, 'g'), values.map(quote).join(','));
  }
  if (/\$\w/.test(out)) throw new Error(`unexpanded macro or variable in:\n${out}`);
  return out;
}

/** Prometheus metric names a PromQL expression reads (the project's metric families). */
export function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:gateway_|usage_|auth_|model_pull_|llamacpp:|process_)[a-z0-9_:]*/g) ?? [];
  return [...new Set(names.map((n) => n.replace(/_(bucket|sum|count)$/, '')))];
}

/** Grafana's PromQL variables, at the step a short test range gives. */
export function expandPromQl(expr: string, rateInterval: string): string {
  const out = expr.replace(/\$__rate_interval\b/g, rateInterval).replace(/\$__interval\b/g, rateInterval);
  if (/\$\w/.test(out)) throw new Error(`unexpanded variable in ${expr}`);
  return out;
}
