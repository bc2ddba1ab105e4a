import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTestDatabase,
  deleteRedisPrefix,
  fakeUsageEvent,
  freePort,
  LlamaServer,
  testRedisPrefix,
  testSettings,
  waitFor,
  xaddUsageEvents,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { expandPromQl, loadDashboards, metricNames, panelTargets } from '../support/dashboards.js';
import { TestPrometheus } from '../support/prometheus.js';
import { startService, type RunningService } from '../support/services.js';

interface Context {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  dir: string;
  /** Free ports for the processes the orchestrator supervises. */
  ports: Record<string, string>;
}

/**
 * The exporters this test runs and the metric families each one serves. A node service also serves
 * prom-client's process_* metrics. To prove more panels, give a service here its metric prefix once
 * its exporter exists (gateway_ for the gateway, auth_ for auth, model_pull_ for the worker) and the
 * environment it needs to start.
 */
const NODE_SERVICES: {
  name: string;
  prefixes: string[];
  args?: string[];
  env(ctx: Context): Record<string, string>;
}[] = [
  {
    name: 'metrics',
    prefixes: ['usage_'],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      DATABASE_URL: ctx.databaseUrl,
      PRICES_FILE: join(ctx.dir, 'prices.yaml'),
    }),
  },
  {
    name: 'gateway',
    prefixes: [],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      AUTH_URL: 'http://127.0.0.1:9',
      BACKENDS_FILE: join(ctx.dir, 'backends.yaml'),
      PORT_HEALTH: '0',
    }),
  },
  {
    name: 'auth',
    prefixes: [],
    env: (ctx) => ({ REDIS_URL: ctx.redisUrl, REDIS_KEY_PREFIX: ctx.prefix, API_KEYS_FILE: join(ctx.dir, 'keys') }),
  },
  {
    name: 'worker',
    prefixes: [],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      DATABASE_URL: ctx.databaseUrl,
      MODELS_DIR: ctx.dir,
    }),
  },
  {
    // supervise serves its /metrics for as long as it runs; it starts its own auth, metrics, worker
    // and gateway on the ports below (its gateway never turns ready here: the backend is a dead port).
    name: 'orchestrator',
    prefixes: ['orchestrator_'],
    args: ['supervise'],
    env: (ctx) => ({
      ...ctx.ports,
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      DATABASE_URL: ctx.databaseUrl,
      DATA_DIR: ctx.dir,
      API_KEYS_FILE: join(ctx.dir, 'keys'),
      BACKENDS_FILE: join(ctx.dir, 'backends.yaml'),
      NVIDIA_SMI: join(ctx.dir, 'no-nvidia-smi'),
      PORT_HEALTH: '0',
      READY_TIMEOUT_MS: '600000',
    }),
  },
];
const INFERENCE_PREFIXES = ['llamacpp:'];

const exporterPrefixes = [...NODE_SERVICES.flatMap((s) => s.prefixes), ...INFERENCE_PREFIXES, 'process_'];
const queries = panelTargets(loadDashboards()).filter((t) => t.target.expr !== undefined);
const proven = queries.filter((q) =>
  metricNames(q.target.expr!).every((m) => exporterPrefixes.some((p) => m.startsWith(p))),
);
const waiting = queries.filter((q) => !proven.includes(q));

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
}

describe('dashboards against a real Prometheus scraping the running services', function () {
  this.timeout(120_000);
  const ctx: Context = {
    redisUrl: testSettings.TEST_REDIS_URL,
    prefix: testRedisPrefix(),
    databaseUrl: '',
    dir: mkdtempSync(join(tmpdir(), 'gg-dashboards-')),
    ports: {},
  };
  let db: TestDatabase;
  let llama: LlamaServer;
  let prometheus: TestPrometheus;
  const services: RunningService[] = [];

  before(async () => {
    db = await createTestDatabase({ migrate: true });
    ctx.databaseUrl = db.url;
    for (const name of ['GATEWAY_PORT', 'GATEWAY_HEALTH_PORT', 'AUTH_PORT', 'METRICS_PORT', 'WORKER_PORT']) {
      ctx.ports[name] = String(await freePort());
    }
    writeFileSync(join(ctx.dir, 'prices.yaml'), 'models:\n  "*": { prompt: 1, completion: 2 }\n');
    writeFileSync(join(ctx.dir, 'keys'), 'dashboards:sk-dashboards-test-key-0001\n');
    const backends =
      'models:\n  tiny: { tiers: [[local]] }\nbackends:\n  local: { kind: llamacpp, url: "http://127.0.0.1:9" }\n';
    writeFileSync(join(ctx.dir, 'backends.yaml'), backends);
    await xaddUsageEvents(ctx.prefix, [
      fakeUsageEvent(1),
      fakeUsageEvent(2, { status: 500, errorCode: 'upstream_error' }),
      fakeUsageEvent(3, { status: 200, errorCode: 'client_aborted' }),
    ]);
    const [llamaServer, ...started] = await Promise.all([
      LlamaServer.start({ slots: 1 }),
      ...NODE_SERVICES.map((s) => startService(s.name, s.env(ctx), s.args)),
    ]);
    llama = llamaServer as LlamaServer;
    services.push(...(started as RunningService[]));
    const metrics = services.find((s) => s.name === 'metrics')!;
    await waitFor('usage events written', async () =>
      /^usage_events_written_total\{service="metrics"\} 3$/m.test(await (await fetch(`${metrics.url}/metrics`)).text()),
    );
    prometheus = await TestPrometheus.start([
      ...services.map((s) => ({ job: s.name, address: s.address })),
      { job: 'inference', address: `127.0.0.1:${llama.port}` },
    ]);
    await prometheus.waitForScrapes(services.length + 1, 3);
  });

  after(async () => {
    await prometheus?.stop();
    await Promise.all([...services.map((s) => s.stop()), llama?.stop()]);
    await deleteRedisPrefix(ctx.prefix);
    await db?.drop();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  for (const { dashboard, panel, target } of proven) {
    it(`${dashboard.title} / ${panel.title} [${target.refId}] returns a series`, async () => {
      const series = await prometheus.query(expandPromQl(target.expr!, '10s'));
      assert.ok(series.length > 0, `no series for ${target.expr}`);
    });
  }

  it('charts the memory of every running node service', async () => {
    const series = await prometheus.query('sum by (service) (process_resident_memory_bytes)');
    assert.deepEqual(series.map((s) => s.metric.service).sort(), NODE_SERVICES.map((s) => s.name).sort());
  });

  it('leaves unproven only queries on metrics whose exporter is not in this tree yet', () => {
    const missing = new Set(waiting.flatMap((q) => metricNames(q.target.expr!)));
    for (const name of missing) assert.match(name, /^(gateway_|auth_|model_pull_)/, `${name} has no exporter here`);
  });

  for (const service of NODE_SERVICES) {
    it(`serves ${service.name}'s /metrics in a form promtool check metrics accepts`, async () => {
      const running = services.find((s) => s.name === service.name)!;
      const { code, output } = await promtoolCheck(await (await fetch(`${running.url}/metrics`)).text());
      assert.equal(code, 0, output);
    });
  }
});
