import assert from 'node:assert/strict';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@gguf-gateway/testkit';
import {
  expandSql,
  loadDashboards,
  metricNames,
  panelTargets,
  provisionedDatasources,
  relativeTime,
  type SqlContext,
} from '../support/dashboards.js';

// The metric names of the contract (DESIGN.md and the metrics issue); exporters and dashboards are
// written by different people, so a dashboard may read only these (plus prom-client's process_*).
const CONTRACT_METRICS = new Set([
  'gateway_requests_total',
  'gateway_request_duration_seconds',
  'gateway_ttft_seconds',
  'gateway_tokens_total',
  'gateway_in_flight_requests',
  'gateway_upstream_errors_total',
  'gateway_usage_events_dropped_total',
  'gateway_backend_requests_total',
  'gateway_backend_errors_total',
  'gateway_backend_in_flight',
  'gateway_backend_state',
  'gateway_backend_fallbacks_total',
  // Models on demand.
  'gateway_models_loaded',
  'gateway_model_load_seconds',
  'gateway_model_evictions_total',
  'gateway_model_load_waiting',
  'gateway_model_requests_in_flight',
  'gateway_model_slots_busy',
  'gateway_model_slots',
  'usage_requests_total',
  'usage_tokens_total',
  'usage_cost_usd_total',
  'usage_events_written_total',
  'usage_write_failures_total',
  'usage_stream_pending',
  'usage_stream_lag',
  'model_pull_jobs_total',
  'model_pull_bytes_total',
  'model_pull_active',
  'model_pull_duration_seconds',
  'auth_decisions_total',
  'auth_keys_loaded',
  'auth_redis_degraded',
  'llamacpp:prompt_tokens_seconds',
  'llamacpp:predicted_tokens_seconds',
  'llamacpp:requests_processing',
  'llamacpp:requests_deferred',
  'llamacpp:kv_cache_usage_ratio',
  // Exported by llama-server itself, beyond the list above.
  'llamacpp:n_busy_slots_per_decode',
  'llamacpp:n_decode_total',
]);

const dashboards = loadDashboards();
const targets = panelTargets(dashboards);
const datasources = provisionedDatasources();

describe('grafana dashboards', () => {
  it('provides the Overview, Usage, Backends and Model pulls dashboards with unique uids', () => {
    assert.deepEqual(dashboards.map((d) => d.title).sort(), ['Backends', 'Model pulls', 'Overview', 'Usage']);
    assert.equal(new Set(dashboards.map((d) => d.uid)).size, dashboards.length);
  });

  for (const dashboard of dashboards) {
    it(`${dashboard.title}: panel ids are unique and every panel has a query`, () => {
      const ids = dashboard.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `duplicate panel ids in ${dashboard.file}: ${ids.join(',')}`);
      for (const panel of dashboard.panels) assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`);
    });

    it(`${dashboard.title}: every datasource is one that provisioning defines, of the same type`, () => {
      const refs = [
        ...dashboard.panels.map((p) => p.datasource),
        ...targets.filter((t) => t.dashboard === dashboard).map((t) => t.datasource),
        ...dashboard.templating.list.map((v) => v.datasource),
      ];
      for (const ref of refs) {
        assert.ok(ref, 'a panel, query or variable without a datasource');
        assert.ok(datasources.has(ref.uid), `datasource uid ${ref.uid} is not provisioned`);
        assert.equal(ref.type, datasources.get(ref.uid));
      }
    });
  }

  it('reads only metrics of the contract', () => {
    for (const { panel, target } of targets.filter((t) => t.target.expr !== undefined)) {
      const names = metricNames(target.expr!);
      assert.ok(names.length > 0, `${panel.title}: no project metric in ${target.expr}`);
      for (const name of names) {
        assert.ok(
          CONTRACT_METRICS.has(name) || name.startsWith('process_'),
          `${panel.title}: ${name} is not in the contract`,
        );
      }
    }
  });

  describe('SQL panels against the migrated schema with seeded rows', () => {
    let db: TestDatabase;
    let client: pg.Client;
    const now = new Date();

    before(async () => {
      db = await createTestDatabase({ migrate: true });
      client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query(`
        INSERT INTO usage_events (request_id, ts, key_id, model, backend, route, status, stream, prompt_tokens,
          completion_tokens, duration_ms, error_code, usage_source, cost_usd)
        SELECT 'r' || i, now() - (i || ' minutes')::interval, 'key-' || (i % 3), 'model-' || (i % 2), 'local', 'chat',
          CASE WHEN i % 10 = 0 THEN 500 ELSE 200 END, i % 2 = 0, 10 * i, 5 * i, 100,
          CASE WHEN i % 10 = 0 THEN 'upstream_error' END, 'upstream', 0.001 * i
        FROM generate_series(1, 120) AS i`);
      await client.query(`
        INSERT INTO usage_daily (day, key_id, model, requests, errors, prompt_tokens, completion_tokens, cost_usd)
        SELECT current_date - d, 'key-' || k, 'model-' || (k % 2), 100 + d, d, 1000 * k, 500 * k, 0.5 * k
        FROM generate_series(0, 6) AS d, generate_series(0, 2) AS k`);
      await client.query(`
        INSERT INTO pull_jobs (job_id, source, model_name, state, bytes_total, bytes_done, sha256, error, created_at, started_at, finished_at)
        VALUES
          ('pull-a', '{"repo":"org/m","file":"m.gguf"}', 'm', 'completed', 1000, 1000, NULL, NULL, now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour'),
          ('pull-b', '{"url":"https://x/y.gguf"}', 'y', 'failed', 1000, 10, NULL, 'sha256 mismatch', now() - interval '30 minutes', now() - interval '30 minutes', now() - interval '29 minutes')`);
      await client.query(`
        INSERT INTO models (name, path, bytes, sha256, source, architecture, quantization, context_length)
        VALUES ('m', '/models/m.gguf', 1000, '${'a'.repeat(64)}', '{"repo":"org/m","file":"m.gguf"}', 'llama', 'Q4_K_M', 4096)`);
    });

    after(async () => {
      await client.end();
      await db.drop();
    });

    for (const dashboard of dashboards) {
      const sqlTargets = targets.filter((t) => t.dashboard === dashboard && t.target.rawSql !== undefined);
      for (const { panel, target } of sqlTargets) {
        it(`${dashboard.title} / ${panel.title} returns rows`, async () => {
          const variables: SqlContext['variables'] = {};
          for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
            const { rows } = await client.query<Record<string, string>>(variable.query);
            variables[variable.name] = rows.map((r) => Object.values(r)[0]!);
            assert.ok(variables[variable.name]!.length > 0, `variable $${variable.name} has no values`);
          }
          const sql = expandSql(target.rawSql!, {
            from: relativeTime(dashboard.time.from, now),
            to: relativeTime(dashboard.time.to, now),
            interval: '1m',
            variables,
          });
          const { rows, fields } = await client.query(sql);
          assert.ok(rows.length > 0, `no rows from:\n${sql}`);
          if (target.format === 'time_series')
            assert.equal(fields[0]!.name, 'time', 'a time series starts with its time column');
        });
      }
    }
  });
});
