import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  createTestDatabase,
  deleteRedisPrefix,
  FakeHub,
  freePort,
  freePorts,
  LlamaServer,
  llamaServerBinary,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  tinyModelPath,
  waitFor,
  writeTestGguf,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { expandPromQl, loadDashboards, metricNames, panelTargets } from '../support/dashboards.js';
import { TestPrometheus, type PromSeries } from '../support/prometheus.js';
import { startService, type RunningService } from '../support/services.js';

// The whole stack wired as production wires it (auth with a keys file, the gateway calling auth and
// a real llama-server, the metrics service reading the gateway's usage stream, the worker pulling
// from a stand-in Hugging Face hub), real traffic through the gateway while a real Prometheus scrapes
// every process: each PromQL panel of each dashboard must chart a number, and the traffic where it
// charts rates.

const USER_KEY = 'sk-dashboards-user-key-0001';
const ADMIN_KEY = 'sk-dashboards-admin-key-0001';
const PULL = { repo: 'acme/dashboards-GGUF', file: 'pulled.gguf' };
/** A model file in the router's folder: served on demand, loaded by its first request. */
const ON_DEMAND = 'on-demand';
const INFERENCE_KEY = 'sk-dashboards-inference-0001';

interface Context {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  dir: string;
  authUrl: string;
  hub: FakeHub;
  /** Free ports for the processes the orchestrator supervises. */
  ports: Record<string, string>;
  /** supervise refuses to start without a default model: it runs its own llama-server with this. */
  llamaServerBin: string;
  tinyModel: string;
  /** The gateway's PORT_HEALTH: its /metrics are there, not on the API port. */
  gatewayHealthPort: string;
  /** llama-server in router mode over `routerModels`, for the models-on-demand panels. */
  routerUrl: string;
  routerModels: string;
}

/**
 * The node services in start order (the gateway needs auth's URL) and the metric families each one
 * serves; every node service also serves prom-client's process_* metrics.
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
    name: 'auth',
    prefixes: ['auth_'],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      API_KEYS_FILE: join(ctx.dir, 'keys'),
      AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
    }),
  },
  {
    name: 'gateway',
    prefixes: ['gateway_'],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      AUTH_URL: ctx.authUrl,
      AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
      BACKENDS_FILE: join(ctx.dir, 'backends.yaml'),
      DATABASE_URL: ctx.databaseUrl,
      PORT_HEALTH: ctx.gatewayHealthPort,
      READINESS_POLL_MS: '200',
      // The refusing backend (it drops every connection: a reset) fails once per round and cools down
      // at its second failure, for good; requests do not wait for it to come back.
      ROUTING_FAILURE_THRESHOLD: '2',
      ROUTING_COOLDOWN_MS: '120000',
      ROUTING_WAIT_MS: '0',
      // Models on demand: every load and unload feeds the Backends dashboard's models panels.
      MODELS_DIR: ctx.routerModels,
      MODELS_ROUTER_URL: ctx.routerUrl,
      MODELS_MEMORY_BYTES: String(2 ** 30),
      INFERENCE_API_KEY: INFERENCE_KEY,
    }),
  },
  {
    name: 'worker',
    prefixes: ['model_pull_'],
    env: (ctx) => ({
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: ctx.prefix,
      DATABASE_URL: ctx.databaseUrl,
      MODELS_DIR: join(ctx.dir, 'models'),
      HF_ENDPOINT: ctx.hub.url,
      // The fake CDN speaks plain HTTP on loopback.
      PULL_ALLOW_HTTP: 'true',
      PULL_ALLOWED_HOSTS: ctx.hub.cdnHost,
    }),
  },
  {
    // supervise serves its /metrics for as long as it runs; it starts its own auth, metrics, worker,
    // llama-server and gateway on the ports below (its gateway never turns ready here: its backend
    // is a dead port).
    name: 'orchestrator',
    prefixes: ['orchestrator_'],
    args: ['supervise'],
    env: (ctx) => ({
      ...ctx.ports,
      REDIS_URL: ctx.redisUrl,
      REDIS_KEY_PREFIX: `${ctx.prefix}orchestrator:`,
      DATABASE_URL: ctx.databaseUrl,
      DATA_DIR: join(ctx.dir, 'orchestrator'),
      API_KEYS_FILE: join(ctx.dir, 'keys'),
      BACKENDS_FILE: join(ctx.dir, 'orchestrator-backends.yaml'),
      NVIDIA_SMI: join(ctx.dir, 'no-nvidia-smi'),
      MODEL_PATH: ctx.tinyModel,
      LLAMA_SERVER_BIN: ctx.llamaServerBin,
      LLAMA_CTX_SIZE: '512',
      LLAMA_THREADS: '1',
      PORT_HEALTH: '0',
      READY_TIMEOUT_MS: '600000',
    }),
  },
];
const INFERENCE_PREFIXES = ['llamacpp:'];

const exporterPrefixes = [...NODE_SERVICES.flatMap((s) => s.prefixes), ...INFERENCE_PREFIXES, 'process_'];
const queries = panelTargets(loadDashboards()).filter((t) => t.target.expr !== undefined);

/** Grafana's $__rate_interval for this test: wide enough to hold all of the traffic below. */
const RATE_INTERVAL = '1m';

/** Counters of failures that a healthy run never has: their panels chart a flat zero. */
const QUIET = new Set(['usage_write_failures_total', 'gateway_usage_events_dropped_total']);

/** A panel of rates or quantiles must show the test's traffic, unless it counts only failures above. */
const showsTraffic = (expr: string) => /\b(rate|increase)\(/.test(expr) && !metricNames(expr).some((m) => QUIET.has(m));

const chat = (model: string, stream = false) => ({
  model,
  stream,
  max_tokens: 4,
  messages: [{ role: 'user', content: 'Say hello' }],
});

/** One round of a user's traffic: each request feeds some panel. */
const TRAFFIC: { what: string; key: string; body: object; status: number }[] = [
  { what: 'chat', key: USER_KEY, body: chat('tiny'), status: 200 },
  { what: 'streamed chat (TTFT)', key: USER_KEY, body: chat('tiny', true), status: 200 },
  // The first tier refuses connections: an upstream error, then the answer from the fallback tier.
  { what: 'chat by fallback', key: USER_KEY, body: chat('tiny-fallback'), status: 200 },
  // Unloaded at the end of each round (unloadOnDemand): each round loads it again.
  { what: 'chat with a model loaded on demand', key: USER_KEY, body: chat(ON_DEMAND), status: 200 },
  { what: 'unknown model', key: USER_KEY, body: chat('no-such-model'), status: 404 },
  { what: 'wrong key', key: 'sk-not-a-key-of-this-gateway', body: chat('tiny'), status: 401 },
];
const ANSWERED_PER_ROUND = TRAFFIC.filter((t) => t.status === 200).length;

async function driveTraffic(gateway: RunningService): Promise<void> {
  for (const { what, key, body, status } of TRAFFIC) {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    assert.equal(res.status, status, what);
  }
}

/** An admin unload: an eviction (reason admin), so that the next round loads the model again. */
async function unloadOnDemand(gateway: RunningService): Promise<void> {
  const res = await fetch(`${gateway.url}/admin/v1/models/${ON_DEMAND}/unload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  assert.equal(res.status, 200, await res.text());
}

/** POST /admin/v1/models/pull with the admin key, then waits for the worker to finish the job. */
async function pullModel(gateway: RunningService): Promise<void> {
  const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
  const res = await fetch(`${gateway.url}/admin/v1/models/pull`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ source: PULL }),
  });
  assert.equal(res.status, 202, await res.clone().text());
  const { jobId } = (await res.json()) as { jobId: string };
  const job = await waitFor(
    'the pull to finish',
    async () => {
      const jobUrl = `${gateway.url}/admin/v1/jobs/${encodeURIComponent(jobId)}`;
      const view = (await (await fetch(jobUrl, { headers })).json()) as { state: string; error: string | null };
      return ['completed', 'failed', 'cancelled'].includes(view.state) ? view : null;
    },
    20_000,
    100,
  );
  assert.equal(job.state, 'completed', job.error ?? undefined);
}

async function eventsWritten(metrics: RunningService): Promise<number> {
  const text = await (await fetch(`${metrics.url}/metrics`)).text();
  return Number(/^usage_events_written_total\{[^}]*\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
}

/** The labels a panel groups by (its legend); `le` is consumed by histogram_quantile. */
const groupLabels = (expr: string) =>
  [...expr.matchAll(/\bby \(([^)]*)\)/g)]
    .flatMap((m) => m[1]!.split(',').map((l) => l.trim()))
    .filter((l) => l !== 'le');

const isNumber = (series: PromSeries) => !Number.isNaN(Number(series.value[1]));
const isPositive = (series: PromSeries) => Number(series.value[1]) > 0;

describe('dashboards against a real Prometheus scraping the running services', function () {
  this.timeout(120_000);
  const ctx = {
    redisUrl: testSettings.TEST_REDIS_URL,
    prefix: testRedisPrefix(),
    databaseUrl: '',
    dir: mkdtempSync(join(tmpdir(), 'gg-dashboards-')),
    authUrl: '',
    ports: {},
  } as Context;
  let db: TestDatabase;
  let llama: LlamaServer;
  let router: ManagedProcess | undefined;
  let prometheus: TestPrometheus;
  const services: RunningService[] = [];
  // A backend that accepts connections and drops them at once.
  const resetting = createNetServer((socket) => socket.destroy());
  const service = (name: string) => services.find((s) => s.name === name)!;

  before(async () => {
    const source = join(ctx.dir, 'hub-model.gguf');
    const [database, llamaServer, hub] = await Promise.all([
      createTestDatabase({ migrate: true }),
      LlamaServer.start({ slots: 1 }),
      FakeHub.start(),
      writeTestGguf(source, 256 * 1024, 7),
    ]);
    db = database;
    llama = llamaServer;
    ctx.hub = hub;
    ctx.databaseUrl = db.url;
    await hub.addFile(PULL.repo, PULL.file, { path: source });
    mkdirSync(join(ctx.dir, 'models'));
    ctx.llamaServerBin = await llamaServerBinary();
    ctx.tinyModel = await tinyModelPath();
    ctx.gatewayHealthPort = String(await freePort());
    ctx.routerModels = join(ctx.dir, 'router-models');
    mkdirSync(ctx.routerModels);
    await writeTinyLlama(join(ctx.routerModels, `${ON_DEMAND}.gguf`));
    const routerPort = await freePort();
    ctx.routerUrl = `http://127.0.0.1:${routerPort}`;
    // As the orchestrator starts it: the gateway alone loads and unloads. Per-model options on its
    // command line are fine here: there is one model.
    router = startProcess(
      ctx.llamaServerBin,
      ['--models-dir', ctx.routerModels, '--no-models-autoload', '--models-max', '0', '--host', '127.0.0.1'].concat([
        '--port',
        String(routerPort),
        '--ctx-size',
        '512',
        '--parallel',
        '1',
        '--threads',
        '1',
      ]),
      { env: { ...process.env, LLAMA_API_KEY: INFERENCE_KEY } },
    );
    await waitFor('the llama-server router', async () => (await fetch(`${ctx.routerUrl}/health`)).ok, 20_000, 100);
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    ctx.ports = await freePorts([
      'GATEWAY_PORT',
      'GATEWAY_HEALTH_PORT',
      'AUTH_PORT',
      'METRICS_PORT',
      'WORKER_PORT',
      'INFERENCE_PORT',
    ]);
    const deadBackend =
      'models:\n  tiny: { tiers: [[local]] }\nbackends:\n  local: { kind: llamacpp, url: "http://127.0.0.1:9" }\n';
    writeFileSync(join(ctx.dir, 'orchestrator-backends.yaml'), deadBackend);
    writeFileSync(join(ctx.dir, 'prices.yaml'), 'models:\n  "*": { prompt: 1, completion: 2 }\n');
    writeFileSync(join(ctx.dir, 'keys'), `dashboards:${USER_KEY}\nops:${ADMIN_KEY} scope=admin\n`);
    writeFileSync(
      join(ctx.dir, 'backends.yaml'),
      [
        'models:',
        '  tiny: { tiers: [[local]] }',
        '  tiny-fallback: { tiers: [[refusing], [local]] }',
        'backends:',
        `  local: { kind: llamacpp, url: "${llama.url}" }`,
        `  refusing: { kind: openai, url: "http://127.0.0.1:${(resetting.address() as AddressInfo).port}" }`,
        '',
      ].join('\n'),
    );

    for (const spec of NODE_SERVICES) {
      const started = await startService(spec.name, spec.env(ctx), spec.args);
      services.push(started);
      if (spec.name === 'auth') ctx.authUrl = started.url;
    }
    const gateway = service('gateway');
    await waitFor('gateway ready', async () => (await fetch(`${gateway.url}/readyz`)).ok, 20_000, 100);
    prometheus = await TestPrometheus.start([
      ...services.map((s) => ({
        job: s.name,
        address: s.name === 'gateway' ? `127.0.0.1:${ctx.gatewayHealthPort}` : s.address,
      })),
      { job: 'inference', address: `127.0.0.1:${llama.port}` },
    ]);
    const targets = services.length + 1;
    await prometheus.waitForScrapesAfter(targets, new Date());

    // rate() needs an increase between two samples, and a labelled series first appears with its
    // first request: the first round creates the series, the second makes them move, as ongoing
    // traffic does. The pull's histogram has no labels and is there from the start.
    for (const round of [1, 2]) {
      await driveTraffic(gateway);
      await unloadOnDemand(gateway);
      if (round === 2) await pullModel(gateway);
      await waitFor('usage events written', async () =>
        (await eventsWritten(service('metrics'))) >= round * ANSWERED_PER_ROUND ? true : null,
      );
      await prometheus.waitForScrapesAfter(targets, new Date());
    }
  });

  after(async () => {
    resetting.close();
    await prometheus?.stop();
    for (const running of [...services].reverse()) await running.stop();
    await llama?.stop();
    if (router) await stopProcess(router);
    await ctx.hub?.stop();
    await deleteRedisPrefix(ctx.prefix);
    await db?.drop();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  it('reads only metrics that a running exporter serves', () => {
    const unserved = queries.flatMap((q) =>
      metricNames(q.target.expr!)
        .filter((m) => !exporterPrefixes.some((p) => m.startsWith(p)))
        .map((m) => `${q.dashboard.title} / ${q.panel.title}: ${m}`),
    );
    assert.deepEqual(unserved, []);
  });

  for (const { dashboard, panel, target } of queries) {
    const moving = showsTraffic(target.expr!);
    it(`${dashboard.title} / ${panel.title} [${target.refId}] charts ${moving ? 'the traffic' : 'a number'}`, async () => {
      const series = await prometheus.query(expandPromQl(target.expr!, RATE_INTERVAL));
      assert.ok(series.length > 0, `no series for ${target.expr}`);
      assert.ok(series.some(isNumber), `only NaN for ${target.expr}: ${JSON.stringify(series)}`);
      // Prometheus drops a label no series has, so a misspelt one would give a legend of blanks.
      const labels = groupLabels(target.expr!);
      assert.ok(
        series.some((s) => labels.every((l) => s.metric[l] !== undefined)),
        `no series with ${labels.join(', ')} for ${target.expr}`,
      );
      if (moving)
        assert.ok(series.some(isPositive), `nothing above zero for ${target.expr}: ${JSON.stringify(series)}`);
    });
  }

  it('shows the refusing backend cooling down and the healthy one not', async () => {
    const series = await prometheus.query('max by (backend) (gateway_backend_state{state="cooling_down"})');
    const byBackend = Object.fromEntries(series.map((s) => [s.metric.backend, s.value[1]]));
    assert.deepEqual(byBackend, { local: '0', refusing: '1' });
  });

  it('counts the completed pull and the refused key', async () => {
    const pulls = await prometheus.query('sum by (result) (model_pull_jobs_total)');
    assert.equal(pulls.find((s) => s.metric.result === 'completed')?.value[1], '1');
    const decisions = await prometheus.query('sum by (result) (auth_decisions_total)');
    assert.ok(decisions.some((s) => s.metric.result === 'invalid_api_key' && Number(s.value[1]) >= 1));
  });

  it('charts the memory of every running node service', async () => {
    const series = await prometheus.query('sum by (service) (process_resident_memory_bytes)');
    assert.deepEqual(series.map((s) => s.metric.service).sort(), NODE_SERVICES.map((s) => s.name).sort());
  });

  it("charts a loaded model's slots, which the gateway reads through the router (Prometheus scrapes one model only)", async () => {
    const gateway = service('gateway');
    const res = await fetch(`${gateway.url}/admin/v1/models/${ON_DEMAND}/load`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(res.status, 200, await res.text());
    // The gateway reads the slots at its next sync with the router (every 2 s).
    let shown = '';
    await waitFor(
      "the gateway's slots gauge",
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${ctx.gatewayHealthPort}/metrics`)).text();
        shown = text
          .split('\n')
          .filter((l) => l.startsWith('gateway_model'))
          .join('\n');
        return /^gateway_model_slots\{model="on-demand"[,}].* [1-9]/m.test(text) ? true : null;
      },
      10_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the gateway shows:\n${shown}`);
    });
    await prometheus.waitForScrapesAfter(services.length + 1, new Date());
    const series = await prometheus.query('sum by (model) (gateway_model_slots)');
    assert.ok(Number(series.find((s) => s.metric.model === ON_DEMAND)?.value[1]) > 0, JSON.stringify(series));
  });

  for (const spec of NODE_SERVICES) {
    it(`serves ${spec.name}'s /metrics in a form promtool check metrics accepts`, async () => {
      // The gateway serves its /metrics on its health port (the API port's need an admin key).
      const base = spec.name === 'gateway' ? `http://127.0.0.1:${ctx.gatewayHealthPort}` : service(spec.name).url;
      const { code, output } = await promtoolCheck(await (await fetch(`${base}/metrics`)).text());
      assert.equal(code, 0, output);
    });
  }
});
