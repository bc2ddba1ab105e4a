// Models on demand end to end: a real llama-server in router mode (--models-dir, --no-models-autoload,
// --models-max 0) serving tiny models written by our GGUF writer, the gateway built by buildGateway
// in front of it with MODELS_MAX_LOADED=2, the real auth service and worker processes, real Redis
// and Postgres, a fake Hugging Face hub for a pull, and the openai SDK as the client.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import pg from 'pg';
import { encodeTinyLlama, writeTinyLlama } from '@gguf-gateway/gguf';
import {
  createTestDatabase,
  FakeHub,
  freePort,
  LlamaServer,
  repoRoot,
  startAuthProcess,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  writeNotGguf,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { GatewayHarness } from '../../services/gateway/test/support/gateway-harness.js';

const INFERENCE_KEY = 'inference-key-0123456789abcdef';
const USER = 'sk-models-user-0123456789';
const ADMIN = 'sk-models-admin-0123456789';
const MODELS = ['alpha', 'bravo', 'charlie'] as const;
// Every model comes from the folder: the backends file names none.
const BACKENDS_YAML = 'models: {}\nbackends: {}';

interface ListedModel {
  id: string;
  status: string;
  reason?: string;
  alias_of: string | null;
}

describe('models on demand: every model on disk, loaded by name, through llama-server router mode', function () {
  this.timeout(180_000);
  let dir: string;
  let modelsDir: string;
  let router: LlamaServer;
  let auth: ManagedProcess;
  let worker: ManagedProcess;
  let hub: FakeHub;
  let db: TestDatabase;
  let gateway: GatewayHarness;
  let client: OpenAI;
  let authUrl: string;
  const prefix = testRedisPrefix();

  const api = async (method: string, path: string, key = ADMIN, body?: unknown) => {
    const res = await fetch(`${gateway.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  const listed = async (): Promise<Map<string, ListedModel>> => {
    const { body } = await api('GET', '/v1/models', USER);
    return new Map((body.data as ListedModel[]).map((m) => [m.id, m]));
  };
  const statuses = async () => {
    const all = await listed();
    return Object.fromEntries(MODELS.map((m) => [m, all.get(m)?.status]));
  };
  /** What the router itself says is loaded. */
  const routerLoaded = async () => {
    const res = await fetch(`${router.url}/models`, { headers: { authorization: `Bearer ${INFERENCE_KEY}` } });
    const { data } = (await res.json()) as { data: { id: string; status: { value: string } }[] };
    return data
      .filter((m) => m.status.value === 'loaded')
      .map((m) => m.id)
      .sort();
  };
  const complete = (model: string) =>
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 });
  /** Loads so far: the load-time histogram's count over every model. */
  const loads = async () => {
    const histogram = await gateway.registry.getSingleMetric('gateway_model_load_seconds')!.get();
    return (histogram.values as { metricName?: string; value: number }[])
      .filter((v) => v.metricName?.endsWith('_count'))
      .reduce((sum, v) => sum + v.value, 0);
  };
  /** The pid of a loaded model's llama-server process: the router lists its port, /proc its command line. */
  const childPid = async (id: string): Promise<number> => {
    const res = await fetch(`${router.url}/models`, { headers: { authorization: `Bearer ${INFERENCE_KEY}` } });
    const { data } = (await res.json()) as { data: { id: string; status: { args?: string[] } }[] };
    const args = data.find((m) => m.id === id)?.status.args ?? [];
    const port = args[args.indexOf('--port') + 1];
    assert.ok(port, `no --port in ${JSON.stringify(args)}`);
    for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
      let cmdline: string[];
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      } catch {
        continue; // it exited meanwhile
      }
      if (cmdline[cmdline.indexOf('--port') + 1] === port && cmdline.includes('--alias')) return Number(pid);
    }
    throw new Error(`no process listens on ${id}'s port ${port}`);
  };
  const unloadAll = async () => {
    for (const [name, model] of await listed()) {
      if (model.status === 'loaded' && model.alias_of === null) {
        assert.equal((await api('POST', `/admin/v1/models/${name}/unload`)).status, 200);
      }
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-models-e2e-'));
    modelsDir = join(dir, 'models');
    mkdirSync(modelsDir);
    for (const [i, name] of MODELS.entries()) await writeTinyLlama(join(modelsDir, `${name}.gguf`), i + 1);
    await writeNotGguf(join(modelsDir, 'broken.gguf'));
    db = await createTestDatabase({ migrate: true });
    hub = await FakeHub.start();
    router = await LlamaServer.startRouter({ modelsDir, apiKey: INFERENCE_KEY, ctxSize: 8192, slots: 2 });

    const authPort = await freePort();
    const keysFile = join(dir, 'api_keys');
    writeFileSync(keysFile, `models-user:${USER}\nmodels-admin:${ADMIN} scope=admin\n`, { mode: 0o600 });
    auth = startAuthProcess({ port: authPort, redisPrefix: prefix, keysFile });
    authUrl = `http://127.0.0.1:${authPort}`;
    await waitFor('auth /readyz', async () => (await fetch(`${authUrl}/readyz`)).status === 200, 15_000);
    worker = startProcess(process.execPath, [join(repoRoot, 'services/worker/dist/main.js')], {
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: db.url,
        MODELS_DIR: modelsDir,
        HF_ENDPOINT: hub.url,
        // The fake CDN speaks plain HTTP on loopback.
        PULL_ALLOW_HTTP: 'true',
        PULL_ALLOWED_HOSTS: hub.cdnHost,
        LOG_LEVEL: 'warn',
      },
    });
    gateway = await GatewayHarness.start({
      authUrl,
      backendsYaml: BACKENDS_YAML,
      inferenceApiKey: INFERENCE_KEY,
      redisPrefix: prefix,
      databaseUrl: db.url,
      timeouts: { firstByteMs: 60_000, idleMs: 60_000 },
      models: {
        MODELS_DIR: modelsDir,
        MODELS_ROUTER_URL: router.url,
        MODELS_MAX_LOADED: 2,
        MODELS_MEMORY_BYTES: 8 * 1024 ** 3,
        MODEL_CAPACITY_WAIT_MS: 60_000,
      },
    });
    client = new OpenAI({ apiKey: USER, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await gateway?.stop();
    if (worker) await stopProcess(worker);
    if (auth) await stopProcess(auth);
    await router?.stop();
    await hub?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists all three through the SDK, completes with each, and the third load evicts the least recently used idle one', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    for (const name of MODELS) assert.ok(ids.includes(name), `${name} not in ${ids.join(', ')}`);
    assert.deepEqual(await statuses(), { alpha: 'available', bravo: 'available', charlie: 'available' });

    for (const name of MODELS) {
      const answer = await complete(name);
      assert.equal(answer.model, name);
      assert.ok(answer.choices[0]!.message.content !== undefined);
      assert.ok(answer.usage!.completion_tokens > 0);
    }
    // alpha was used first and is idle: charlie's load took its place.
    assert.deepEqual(await statuses(), { alpha: 'available', bravo: 'loaded', charlie: 'loaded' });
    assert.deepEqual(await routerLoaded(), ['bravo', 'charlie']);
    assert.equal(await gateway.metric('gateway_model_evictions_total', { reason: 'lru' }), 1);
    assert.equal(await gateway.metric('gateway_models_loaded'), 2);

    const admin = await api('GET', '/admin/v1/models');
    const bravo = (admin.body.data as Record<string, unknown>[]).find((m) => m.name === 'bravo')!;
    assert.equal(bravo.status, 'loaded');
    assert.equal(bravo.quantization, 'F32');
    assert.equal(bravo.sizeBytes, encodeTinyLlama(2).length);
    assert.ok(Date.parse(bravo.lastUsedAt as string) > Date.now() - 60_000);
  });

  it('keeps a stream from one model untouched while ten requests for two others take turns on the one free place', async () => {
    await unloadAll();
    const stream = await client.chat.completions.create({
      model: 'alpha',
      messages: [{ role: 'user', content: 'tell me everything' }],
      max_tokens: 3000,
      stream: true,
      // llama-server's own field: keep generating to max_tokens, so the stream outlasts the others.
      ...({ ignore_eos: true } as object),
    });
    const chunks = stream[Symbol.asyncIterator]();
    const first = await chunks.next();
    assert.equal(first.done, false);
    assert.equal((await statuses()).alpha, 'loaded');

    // Ten requests for bravo and charlie with room for one of them at a time: alpha is busy.
    const others = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => complete(i % 2 === 0 ? 'bravo' : 'charlie')),
    );
    const failures = others.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    assert.deepEqual(failures, []);
    // The stream was still in flight all along: alpha kept its slot and was never unloaded.
    assert.equal(gateway.models!.service.state('alpha').inFlight, 1);
    assert.equal((await statuses()).alpha, 'loaded');

    let text = '';
    let finish: string | null = null;
    let count = 1;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
      count += 1;
      text += next.value.choices[0]?.delta.content ?? '';
      finish = next.value.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'length');
    assert.ok(count > 1000, `${count} chunks`);
    assert.ok(text.length > 0);
    assert.equal(gateway.models!.service.state('alpha').inFlight, 0);
  });

  it('serves 30 concurrent requests over 3 models with room for 2: all succeed, queued rather than thrashed', async () => {
    await unloadAll();
    const before = await loads();
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => complete(MODELS[i % 3]!)));
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    if (failures.length > 0) writeFileSync('/tmp/gg-debug-gateway.log', gateway.logs.text());
    assert.deepEqual(failures, []);
    const count = (await loads()) - before;
    console.log(`      30 requests over 3 models with room for 2: ${count} loads`);
    assert.ok(count >= 3 && count <= 5, `${count} loads`);
    assert.equal(await gateway.metric('gateway_model_load_waiting'), 0);
  });

  it('serves a model pulled from the hub while the stack runs by its name, right after the pull is done', async () => {
    await hub.addFile('acme/delta-GGUF', 'delta.gguf', { data: encodeTinyLlama(4) });
    const pull = await api('POST', '/admin/v1/models/pull', ADMIN, {
      source: { repo: 'acme/delta-GGUF', file: 'delta.gguf' },
    });
    assert.equal(pull.status, 202, JSON.stringify(pull.body));
    const events = await fetch(`${gateway.url}/admin/v1/jobs/${pull.body.jobId as string}/events`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const last = [...(await events.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).pop();
    assert.equal(last, 'completed');
    const answer = await complete('delta');
    assert.equal(answer.model, 'delta');
    assert.equal((await listed()).get('delta')?.status, 'loaded');
  });

  it('lists a corrupt GGUF as failed with the reason, answers 503 for it, and serves the others', async () => {
    const broken = (await listed()).get('broken');
    assert.equal(broken?.status, 'failed');
    assert.match(broken.reason!, /not a readable GGUF file/);
    await assert.rejects(complete('broken'), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.status, 503);
      assert.equal(err.code, 'model_failed');
      assert.match(err.message, /'broken' cannot be served: not a readable GGUF file/);
      return true;
    });
    assert.equal((await complete('alpha')).model, 'alpha');
  });

  it('answers a clear 503 naming the sizes for a model larger than the memory budget', async () => {
    // A second gateway on the same router with a 1 MiB budget; nothing loaded, so it adopts nothing.
    await unloadAll();
    const small = await GatewayHarness.start({
      authUrl,
      backendsYaml: BACKENDS_YAML,
      inferenceApiKey: INFERENCE_KEY,
      models: { MODELS_DIR: modelsDir, MODELS_ROUTER_URL: router.url, MODELS_MEMORY_BYTES: 1024 * 1024 },
    });
    try {
      const res = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'charlie', messages: [{ role: 'user', content: 'hi' }] }),
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 503);
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.equal(body.error.code, 'model_too_large');
      assert.match(body.error.message, /'charlie' needs [\d.]+ MiB of memory and the budget is 1\.0 MiB/);
    } finally {
      await small.stop();
    }
  });

  it("answers 503 in each route's error shape, without the router's address, when the router is gone", async () => {
    // A second gateway whose router does not answer: the folder is listed, every load fails.
    const gonePort = await freePort();
    const orphan = await GatewayHarness.start({
      authUrl,
      backendsYaml: BACKENDS_YAML,
      inferenceApiKey: INFERENCE_KEY,
      models: {
        MODELS_DIR: modelsDir,
        MODELS_ROUTER_URL: `http://127.0.0.1:${gonePort}`,
        MODELS_MEMORY_BYTES: 8 * 1024 ** 3,
      },
    });
    try {
      const post = (path: string, body: unknown) =>
        fetch(`${orphan.url}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${USER}`,
            'content-type': 'application/json',
            'anthropic-version': '2023-06-01',
          },
          body: JSON.stringify(body),
        });
      const chat = await post('/v1/chat/completions', { model: 'alpha', messages: [{ role: 'user', content: 'hi' }] });
      const openaiBody = (await chat.json()) as { error: { code: string; message: string } };
      assert.equal(chat.status, 503);
      assert.ok(Number(chat.headers.get('retry-after')) > 0);
      assert.equal(openaiBody.error.code, 'model_load_failed');
      assert.match(openaiBody.error.message, /the models router is not reachable/);
      assert.doesNotMatch(JSON.stringify(openaiBody), new RegExp(`127\\.0\\.0\\.1|${gonePort}|ECONNREFUSED`));

      const messages = await post('/v1/messages', {
        model: 'alpha',
        max_tokens: 4,
        messages: [{ role: 'user', content: 'hi' }],
      });
      const anthropicBody = (await messages.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(messages.status, 503);
      assert.equal(anthropicBody.type, 'error');
      assert.match(anthropicBody.error.message, /'alpha' failed to load/);
      assert.doesNotMatch(JSON.stringify(anthropicBody), new RegExp(`127\\.0\\.0\\.1|${gonePort}`));
    } finally {
      await orphan.stop();
    }
  });

  it('refuses to delete a loaded model (409) and deletes an idle one: file, pull record and listing', async () => {
    const load = await api('POST', '/admin/v1/models/bravo/load');
    assert.equal(load.status, 200, JSON.stringify(load.body));
    assert.equal(load.body.status, 'loaded');
    const refused = await api('DELETE', '/admin/v1/models/bravo');
    assert.equal(refused.status, 409);
    assert.equal((refused.body.error as { code: string }).code, 'model_loaded');
    assert.ok(existsSync(join(modelsDir, 'bravo.gguf')));

    if ((await listed()).get('delta')?.status === 'loaded') {
      assert.equal((await api('POST', '/admin/v1/models/delta/unload')).status, 200);
    }
    const deleted = await api('DELETE', '/admin/v1/models/delta');
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.equal(existsSync(join(modelsDir, 'delta.gguf')), false);
    assert.equal((await listed()).has('delta'), false);
    const rows = await new pg.Client({ connectionString: db.url });
    await rows.connect();
    try {
      const { rowCount } = await rows.query("SELECT 1 FROM models WHERE name = 'delta.gguf'");
      assert.equal(rowCount, 0);
    } finally {
      await rows.end();
    }
    await assert.rejects(complete('delta'), (err: InstanceType<typeof OpenAI.APIError>) => err.status === 404);
  });

  it('loads again, and serves, a model whose process died since the last sync, instead of relaying "model is not loaded"', async () => {
    await unloadAll();
    assert.equal((await complete('alpha')).model, 'alpha');
    const loadsBefore = await loads();
    // No sync with the router until the request is answered: admission still thinks alpha loaded,
    // as it does for up to 2 s after a process dies.
    gateway.models!.service.stop();
    try {
      process.kill(await childPid('alpha'), 'SIGKILL');
      await waitFor('the router to see the process gone', async () => !(await routerLoaded()).includes('alpha'));
      assert.equal(gateway.models!.service.state('alpha').state, 'loaded');

      const answer = await complete('alpha');
      assert.equal(answer.model, 'alpha');
      assert.ok(answer.usage!.completion_tokens > 0);
      assert.equal(await loads(), loadsBefore + 1);
      assert.deepEqual(await routerLoaded(), ['alpha']);
    } finally {
      gateway.models!.service.start();
    }
  });

  it('loads a pinned model at start and never unloads it to make room', async () => {
    await unloadAll();
    const pinned = await GatewayHarness.start({
      authUrl,
      backendsYaml: BACKENDS_YAML,
      inferenceApiKey: INFERENCE_KEY,
      models: {
        MODELS_DIR: modelsDir,
        MODELS_ROUTER_URL: router.url,
        MODELS_MAX_LOADED: 2,
        MODELS_MEMORY_BYTES: 8 * 1024 ** 3,
        MODELS_PINNED: ['charlie'],
      },
    });
    try {
      await waitFor('the pinned model to load', async () => pinned.models!.service.state('charlie').state === 'loaded');
      const pinnedClient = new OpenAI({ apiKey: USER, baseURL: `${pinned.url}/v1`, maxRetries: 0 });
      for (const model of ['alpha', 'bravo', 'alpha']) {
        const answer = await pinnedClient.chat.completions.create({
          model,
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: 2,
        });
        assert.equal(answer.model, model);
      }
      // Room for two: alpha and bravo took turns on the one place charlie left.
      assert.equal(pinned.models!.service.state('charlie').state, 'loaded');
      assert.equal(pinned.models!.service.state('bravo').state, 'unloaded');
      assert.deepEqual(await routerLoaded(), ['alpha', 'charlie']);
    } finally {
      await pinned.stop();
    }
  });
});
