import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { loadConfig, type z } from '@gguf-gateway/shared';
import {
  freePort,
  llamaServerBinary,
  repoRoot,
  startProcess,
  stopProcess,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import { authConfigSchema } from '../../../auth/src/config.js';
import { gatewayConfigSchema } from '../../../gateway/src/config.js';
import { metricsConfigSchema } from '../../../metrics/src/config.js';
import { workerConfigSchema } from '../../../worker/src/config.js';
import { orchestratorConfigSchema } from '../../src/config.js';
import { writeLlamaArgs, writeModelsPreset } from '../../src/router/inference-files.repository.js';
import { modelsPresetSections, renderModelsPreset, routerArgs } from '../../src/router/models-preset.js';
import { resolveDirs } from '../../src/start-context.js';

const run = promisify(execFile);

interface ComposeService {
  image?: string;
  profiles?: string[];
  ports?: unknown[];
  healthcheck?: { test?: string[] };
  restart?: string;
  networks?: Record<string, { aliases?: string[] } | null>;
  environment?: Record<string, string | null>;
  depends_on?: Record<string, { condition: string }>;
  secrets?: { source: string }[];
  volumes?: string[];
  stop_grace_period?: string;
  deploy?: { resources?: { reservations?: { devices?: { driver: string }[] } } };
  cap_drop?: string[];
  security_opt?: string[];
  read_only?: boolean;
  user?: string;
  command?: string[];
}

/** docker-compose (Debian's 1.29) with no profiles or files from the caller's environment. */
async function compose(...args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.COMPOSE_PROFILES;
  delete env.COMPOSE_FILE;
  const { stdout } = await run('docker-compose', args, { cwd: repoRoot, env });
  return stdout;
}

const SCHEMAS: Record<string, z.ZodRawShape> = {
  init: orchestratorConfigSchema,
  auth: authConfigSchema,
  gateway: gatewayConfigSchema,
  metrics: metricsConfigSchema,
  worker: workerConfigSchema,
};

describe('docker-compose.yml', function () {
  this.timeout(30_000);
  let services: Record<string, ComposeService>;
  let gpu: Record<string, ComposeService>;
  const GPU_FILES = ['-f', 'docker-compose.yml', '-f', 'docker-compose.gpu.yml'];

  before(async () => {
    const all = await compose('--profile', 'observability', 'config');
    services = (parse(all) as { services: Record<string, ComposeService> }).services;
    gpu = (parse(await compose(...GPU_FILES, 'config')) as { services: Record<string, ComposeService> }).services;
  });

  for (const [what, args] of [
    ['docker-compose.yml', []],
    ['with docker-compose.gpu.yml', GPU_FILES],
    ['with --profile observability', ['--profile', 'observability']],
  ] as const) {
    it(`passes docker-compose config -q ${what}`, async () => {
      await compose(...args, 'config', '-q');
    });
  }

  it('publishes the gateway port and no other', () => {
    const publishing = Object.entries(services)
      .filter(([, s]) => (s.ports ?? []).length > 0)
      .map(([name]) => name);
    assert.deepEqual(publishing, ['gateway']);
  });

  it('gives every service a healthcheck and a restart policy', () => {
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.healthcheck?.test?.length, `${name} has no healthcheck`);
      assert.ok(s.restart, `${name} has no restart policy`);
    }
    assert.equal(services.init!.restart, 'no', 'init runs once');
  });

  it('waits on health or completion, never on a bare start', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
        assert.ok(
          ['service_healthy', 'service_completed_successfully'].includes(condition),
          `${name} -> ${dependency}: ${condition}`,
        );
      }
    }
    assert.equal(services.auth!.depends_on!.init!.condition, 'service_completed_successfully');
    assert.equal(services.gateway!.depends_on!.auth!.condition, 'service_healthy');
    assert.equal(services.inference!.depends_on!.init!.condition, 'service_completed_successfully');
  });

  it('names, in every URL of an environment, a service on a network it shares', () => {
    const namesOn = (network: string) =>
      Object.entries(services).flatMap(([name, s]) =>
        network in (s.networks ?? {}) ? [name, ...(s.networks![network]?.aliases ?? [])] : [],
      );
    for (const [name, s] of Object.entries(services)) {
      const reachable = new Set(Object.keys(s.networks ?? {}).flatMap(namesOn));
      for (const [variable, value] of Object.entries(s.environment ?? {})) {
        if (!value || !/^[a-z]+:\/\//.test(value)) continue;
        const host = new URL(value).hostname;
        if (host.includes('.') && host !== '127.0.0.1') continue; // a public host, e.g. HF_ENDPOINT
        assert.ok(reachable.has(host), `${name}: ${variable}=${value} names ${host}, not a service it can reach`);
      }
    }
  });

  it("sets every variable each service's config schema requires, with values the schema accepts", () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const env = Object.fromEntries(
        Object.entries(services[name]!.environment ?? {}).filter((e): e is [string, string] => e[1] !== null),
      );
      // A secret given as NAME_FILE (a Docker secret) stands in for NAME; its content is not here to read.
      for (const [variable, file] of Object.entries(env)) {
        if (variable.endsWith('_FILE') && file.startsWith('/run/secrets/')) {
          env[variable.slice(0, -'_FILE'.length)] = 'a-docker-secret-0123456789';
        }
      }
      const required = Object.keys(schema).filter((key) => !schema[key]!.safeParse(undefined).success);
      for (const key of required) assert.ok(env[key], `${name} lacks ${key}`);
      assert.doesNotThrow(() => loadConfig(schema, env), `${name}'s environment`);
    }
  });

  it('gives auth and the gateway the internal token from one Docker secret, and no other service', () => {
    const holders = Object.entries(services)
      .filter(([, s]) => s.secrets?.some((x) => x.source === 'auth_internal_token'))
      .map(([name]) => name)
      .sort();
    assert.deepEqual(holders, ['auth', 'gateway']);
    for (const name of holders) {
      assert.equal(services[name]!.environment?.AUTH_INTERNAL_TOKEN_FILE, '/run/secrets/auth_internal_token');
    }
  });

  it("mounts the keys file's directory read-only, only where it is read, so a replaced file reaches auth", () => {
    const withKeys = Object.entries(services)
      .filter(([, s]) => s.volumes?.some((v) => v.endsWith(':/run/keys:ro')))
      .map(([name]) => name)
      .sort();
    assert.deepEqual(withKeys, ['auth', 'init']);
    for (const name of withKeys) assert.equal(services[name]!.environment!.API_KEYS_FILE, '/run/keys/api_keys');
    const keysMount = services.auth!.volumes!.find((v) => v.endsWith(':/run/keys:ro'))!;
    assert.match(keysMount, /\/secrets\/keys:/, 'a directory, not a single-file bind mount');
    assert.ok(!Object.values(services).some((s) => s.secrets?.some((x) => x.source === 'api_keys')));
  });

  it('passes the default model, revision included, through to init', () => {
    for (const name of ['MODEL_PATH', 'MODEL_REPO', 'MODEL_FILE', 'MODEL_REVISION', 'MODEL_ALIASES']) {
      assert.ok(name in services.init!.environment!, `init does not pass ${name} through`);
    }
    assert.match(readFileSync(join(repoRoot, '.env.example'), 'utf8'), /^#?MODEL_REVISION=/m);
  });

  it("gives the gateway longer to stop than its own drain (SHUTDOWN_GRACE_MS) before Docker's SIGKILL", () => {
    const grace = /^(\d+)s$/.exec(services.gateway!.stop_grace_period ?? '');
    assert.ok(grace, `gateway stop_grace_period: ${services.gateway!.stop_grace_period}`);
    const drainMs = Number(gatewayConfigSchema.SHUTDOWN_GRACE_MS!.parse(undefined));
    assert.ok(Number(grace[1]) * 1000 >= drainMs + 10_000, `${grace[0]} leaves no time to flush after ${drainMs} ms`);
  });

  it('keeps models and Postgres on named volumes, and reserves GPUs only with docker-compose.gpu.yml', () => {
    assert.ok(services.postgres!.volumes!.some((v) => v.startsWith('postgres-data:')));
    assert.ok(services.worker!.volumes!.some((v) => v.startsWith('models:/models')));
    const reserving = (all: Record<string, ComposeService>) =>
      Object.entries(all)
        .filter(([, s]) => s.deploy?.resources?.reservations?.devices?.some((d) => d.driver === 'nvidia'))
        .map(([name]) => name)
        .sort();
    assert.deepEqual(reserving(services), []);
    assert.deepEqual(reserving(gpu), ['inference', 'init']);
    // One service name on the CPU and on the GPUs: `docker compose restart inference` works on both.
    assert.equal(services.inference!.image, 'ghcr.io/ggml-org/llama.cpp:server');
    assert.equal(gpu.inference!.image, 'ghcr.io/ggml-org/llama.cpp:server-cuda');
    assert.deepEqual(Object.keys(gpu).sort(), Object.keys(services).sort());
  });

  it('mounts the models volume writable for the worker (pulls) and the gateway (deletes) only, read-only elsewhere', () => {
    const mounts = Object.fromEntries(
      Object.entries(services)
        .map(([name, s]) => [name, s.volumes?.find((v) => v.startsWith('models:'))] as const)
        .filter((e): e is readonly [string, string] => e[1] !== undefined),
    );
    assert.deepEqual(mounts, {
      init: 'models:/models:ro',
      worker: 'models:/models:rw',
      inference: 'models:/models:ro',
      gateway: 'models:/models:rw',
    });
  });

  it("points the gateway at llama-server's router, the models volume and init's memory budget (read-only)", () => {
    const env = services.gateway!.environment!;
    assert.equal(env.MODELS_DIR, '/models');
    assert.equal(env.MODELS_ROUTER_URL, 'http://inference:8180');
    assert.equal(env.MODELS_MEMORY_FILE, '/orchestrator/memory-budget.json');
    assert.equal(env.MODELS_PINNED, 'default', 'the default model stays loaded');
    assert.ok(services.gateway!.volumes!.includes('orchestrator-data:/orchestrator:ro'));
    for (const name of ['MODELS_MAX_LOADED', 'MODEL_LOAD_TIMEOUT_MS', 'MODEL_IDLE_UNLOAD_SEC']) {
      assert.ok(name in env, `the gateway does not pass ${name} through`);
    }
    // init writes the budget and the router's files into the volume that inference reads.
    assert.equal(
      resolveDirs(loadConfig(orchestratorConfigSchema, { BACKENDS_FILE: '/config/backends.yaml', DATA_DIR: '/data' }))
        .memoryBudgetFile,
      '/data/memory-budget.json',
    );
    assert.ok(services.init!.volumes!.includes('orchestrator-data:/data:rw'));
    // The router lists llama.cpp's download cache too: an empty tmpfs folder, not the image's HOME.
    assert.equal(services.inference!.environment!.LLAMA_CACHE, '/tmp/llama-cache');
  });

  it('drops every capability and privilege gain, with read-only root filesystems but for Grafana', () => {
    for (const [name, s] of Object.entries(services)) {
      assert.deepEqual(s.cap_drop, ['ALL'], `${name} keeps capabilities`);
      assert.ok(s.security_opt?.includes('no-new-privileges:true'), `${name} may gain privileges`);
      if (name !== 'grafana') assert.equal(s.read_only, true, `${name} has a writable root filesystem`);
    }
    for (const name of ['postgres', 'redis', 'inference']) assert.ok(services[name]!.user, `${name} runs as root`);
  });

  it('has no default password: Postgres, Redis, Grafana and the hub token come from secret files', () => {
    const text = readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8');
    assert.doesNotMatch(text, /PASSWORD:-|PASSWORD: \$\{|HF_TOKEN:\s*$/m);
    assert.equal(services.postgres!.environment!.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres_password');
    assert.match(services.redis!.command!.join(' '), /requirepass \$\$?\(cat \/run\/secrets\/redis_password\)/);
    assert.equal(
      services.grafana!.environment!.GF_SECURITY_ADMIN_PASSWORD__FILE,
      '/run/secrets/grafana_admin_password',
    );
    const withToken = Object.entries(services)
      .filter(([, s]) => s.secrets?.some((x) => x.source === 'hf_token') || 'HF_TOKEN' in (s.environment ?? {}))
      .map(([name]) => name);
    assert.deepEqual(withToken, ['worker']);
    for (const name of ['init', 'auth', 'metrics', 'worker', 'gateway']) {
      const env = services[name]!.environment!;
      assert.equal(env.REDIS_PASSWORD_FILE, '/run/secrets/redis_password', name);
      assert.equal(env.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres_password', name);
    }
  });

  it("gives Prometheus every secret its scrape jobs read, and a service for each job's target", () => {
    const prometheus = services.prometheus!;
    const config = parse(readFileSync(join(repoRoot, 'infra/prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: { static_configs: { targets: string[] }[]; authorization?: { credentials_file?: string } }[];
    };
    const secrets = config.scrape_configs.flatMap((c) => c.authorization?.credentials_file ?? []);
    assert.ok(secrets.length > 0);
    for (const file of secrets) {
      const name = file.replace('/run/secrets/', '');
      assert.ok(
        prometheus.secrets?.some((s) => s.source === name),
        `prometheus reads ${file} but has no ${name} secret`,
      );
    }
    const reachable = new Set(
      Object.entries(services).flatMap(([name, s]) =>
        Object.keys(prometheus.networks ?? {}).some((n) => n in (s.networks ?? {}))
          ? [name, ...Object.values(s.networks ?? {}).flatMap((n) => n?.aliases ?? [])]
          : [],
      ),
    );
    for (const target of config.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets))) {
      const host = target.split(':')[0]!;
      assert.ok(reachable.has(host), `prometheus scrapes ${target}, but no service answers to ${host}`);
    }
  });

  it("mounts the metrics service's Prometheus and Grafana files in the observability profile", () => {
    const mounts = [...services.prometheus!.volumes!, ...services.grafana!.volumes!].map((v) =>
      v.replace(`${repoRoot.replace(/\/$/, '')}/`, './'),
    );
    for (const path of [
      './infra/prometheus/prometheus.yml',
      './infra/grafana/provisioning/datasources',
      './infra/grafana/provisioning/dashboards',
      './infra/grafana/dashboards',
    ]) {
      assert.ok(
        mounts.some((m) => m.startsWith(`${path}:`)),
        `${path} is not mounted`,
      );
    }
  });
});

describe('Dockerfiles', () => {
  const dockerignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8');

  for (const file of ['Dockerfile', 'Dockerfile.all-in-one']) {
    const text = readFileSync(join(repoRoot, file), 'utf8');

    it(`${file}: every path it copies from the repository exists and is not in .dockerignore`, () => {
      const sources = [...text.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
      assert.ok(sources.length > 0);
      for (const source of sources) {
        assert.ok(existsSync(join(repoRoot, source)), `${file} copies ${source}, which does not exist`);
        assert.ok(!dockerignore.split('\n').includes(source), `${source} is excluded by .dockerignore`);
      }
    });

    it(`${file}: starts a service entrypoint that the build produces, with a node healthcheck`, () => {
      const started = [...text.matchAll(/services\/(\w+)\/dist\/main\.js/g)].map((m) => m[1]!);
      assert.ok(started.length > 0);
      for (const service of started) assert.ok(existsSync(join(repoRoot, 'services', service, 'src', 'main.ts')));
      assert.match(text, /^HEALTHCHECK .*"node", "[^"]*healthcheck\.mjs"/m);
    });
  }

  it('runs the services image as a non-root user with production dependencies only', () => {
    const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    assert.match(text, /^USER node$/m);
    assert.match(text, /npm ci --omit=dev/);
  });

  it('takes its base images as build arguments whose defaults are the registry images', () => {
    const services = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    assert.match(services, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    assert.doesNotMatch(services, /^FROM (?!\$\{NODE_IMAGE\}|manifests)/m);
    const allInOne = readFileSync(join(repoRoot, 'Dockerfile.all-in-one'), 'utf8');
    assert.match(allInOne, /^ARG LLAMA_CPP_IMAGE=ghcr\.io\/ggml-org\/llama\.cpp:server-cuda$/m);
    assert.match(allInOne, /^FROM \$\{LLAMA_CPP_IMAGE\}$/m);
  });

  it('bases the all-in-one image on llama.cpp server-cuda, runs supervise, and its services as a user', () => {
    const text = readFileSync(join(repoRoot, 'Dockerfile.all-in-one'), 'utf8');
    assert.match(text, /RUN_AS_USER=gguf/);
    assert.match(text, /^ENTRYPOINT \["node", "[^"]+services\/orchestrator\/dist\/main\.js", "supervise"\]$/m);
  });
});

describe('container scripts', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'gg-deploy-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const INFERENCE_KEY = 'sk-inference-0123456789';

  /** infra/inference/entrypoint.sh with the arguments file prepare wrote and INFERENCE_KEY, once /health answers. */
  async function startEntrypoint(argsFile: string): Promise<{ proc: ManagedProcess; port: number }> {
    const keyFile = join(dir, 'inference_key');
    writeFileSync(keyFile, `${INFERENCE_KEY}\n`);
    const port = await freePort();
    const proc = startProcess('sh', [join(repoRoot, 'infra/inference/entrypoint.sh')], {
      env: {
        ...process.env,
        LLAMA_SERVER_BIN: await llamaServerBinary(),
        LLAMA_ARGS_FILE: argsFile,
        INFERENCE_API_KEY_FILE: keyFile,
        INFERENCE_HOST: '127.0.0.1',
        INFERENCE_PORT: String(port),
      },
    });
    try {
      await waitFor('llama-server /health', async () => {
        if (proc.child.exitCode !== null) throw new Error(proc.output());
        return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200;
      });
    } catch (err) {
      await stopProcess(proc);
      throw err;
    }
    return { proc, port };
  }

  it('infra/inference/entrypoint.sh starts the real llama-server with the arguments prepare wrote', async () => {
    mkdirSync(join(dir, 'a model dir'));
    const model = join(dir, 'a model dir', 'tiny.gguf');
    await writeTinyLlama(model);
    const argsFile = join(dir, 'llama-server.args');
    await writeLlamaArgs(argsFile, ['--model', model, '--ctx-size', '512', '--parallel', '1', '--threads', '1']);
    const { proc, port } = await startEntrypoint(argsFile);
    try {
      const models = (key: string) =>
        fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal((await models('wrong')).status, 401);
      assert.equal((await models(INFERENCE_KEY)).status, 200);
    } finally {
      await stopProcess(proc);
    }
  });

  it("infra/inference/entrypoint.sh starts llama-server's router on the models folder and preset prepare wrote, behind the key", async function () {
    this.timeout(120_000);
    const modelsDir = join(dir, 'router models');
    mkdirSync(modelsDir);
    await writeTinyLlama(join(modelsDir, 'tiny-a.gguf'));
    await writeTinyLlama(join(modelsDir, 'tiny-b.gguf'));
    const presetFile = join(dir, 'llama-server.models.ini');
    await writeModelsPreset(
      presetFile,
      renderModelsPreset(
        modelsPresetSections({
          modelsDir,
          defaults: { 'n-gpu-layers': '0', 'ctx-size': '512', parallel: '1', threads: '1' },
          defaultModel: { path: join(modelsDir, 'tiny-a.gguf'), options: {} },
          defaultAliases: ['gpt-4o-mini'],
          localModels: [
            { name: 'tiny-b', aliases: ['b'], path: join(modelsDir, 'tiny-b.gguf'), options: { 'ctx-size': '256' } },
          ],
        }),
      ),
    );
    const argsFile = join(dir, 'router.args');
    await writeLlamaArgs(argsFile, routerArgs(modelsDir, presetFile));
    const { proc, port } = await startEntrypoint(argsFile);
    const call = (path: string, key: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${port}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const key = INFERENCE_KEY;
    interface RouterModel {
      id: string;
      aliases: string[];
      status: { value: string; args?: string[] };
    }
    const listed = async () => ((await (await call('/models', key)).json()) as { data: RouterModel[] }).data;
    try {
      // Healthy with no model loaded (startEntrypoint waited for /health): the healthcheck passes at once.
      assert.equal((await call('/models', 'wrong')).status, 401);
      const models = await listed();
      assert.deepEqual(models.map((m) => [m.id, [...m.aliases].sort(), m.status.value]).sort(), [
        ['tiny-a', ['default', 'gpt-4o-mini'], 'unloaded'],
        ['tiny-b', ['b'], 'unloaded'],
      ]);
      // Autoload is off: nothing loads until asked.
      const chat = (model: string, k = key) =>
        call('/v1/chat/completions', k, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
      assert.equal((await chat('default')).status, 400);
      assert.equal((await call('/models/load', key, { model: 'default' })).status, 200);
      const loaded = await waitFor(
        'tiny-a loaded',
        async () => {
          const a = (await listed()).find((m) => m.id === 'tiny-a')!;
          if (a.status.value === 'unloaded' && a.status.args === undefined) return null;
          return a.status.value === 'loaded' ? a : null;
        },
        60_000,
        200,
      );
      // [*] reached the child: the router's own command line carries nothing per model.
      assert.ok(loaded.status.args!.join(' ').includes('--ctx-size 512'), loaded.status.args!.join(' '));
      assert.equal((await chat('default', 'wrong')).status, 401);
      const completion = await chat('gpt-4o-mini');
      assert.equal(completion.status, 200, await completion.clone().text());
      const body = (await completion.json()) as { usage: { completion_tokens: number } };
      assert.equal(body.usage.completion_tokens, 4);
      assert.equal((await call('/models/unload', key, { model: 'tiny-a' })).status, 200);
    } finally {
      await stopProcess(proc);
    }
  });

  it('infra/inference/entrypoint.sh refuses to start without the arguments file, saying who writes it', async () => {
    const failed = await run('sh', [join(repoRoot, 'infra/inference/entrypoint.sh')], {
      env: { ...process.env, LLAMA_ARGS_FILE: join(dir, 'missing.args') },
    }).then(
      () => assert.fail('should exit non-zero'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /missing.args is missing or empty; the init service writes it/);
  });

  const entrypoint = (env: Record<string, string>) =>
    run(
      'sh',
      [
        join(repoRoot, 'infra/docker/service-entrypoint.sh'),
        'sh',
        '-c',
        'echo "$REDIS_URL|$DATABASE_URL|${REDIS_PASSWORD_FILE-gone}"',
      ],
      { env: { PATH: process.env.PATH, ...env } },
    );

  it('infra/docker/service-entrypoint.sh puts the password secrets into REDIS_URL and DATABASE_URL', async () => {
    writeFileSync(join(dir, 'redis_password'), 'r3dis-pw\n');
    writeFileSync(join(dir, 'postgres_password'), 'pg.pw_1\n');
    const { stdout } = await entrypoint({
      REDIS_URL: 'redis://redis:6379',
      REDIS_PASSWORD_FILE: join(dir, 'redis_password'),
      DATABASE_URL: 'postgres://gguf@postgres:5432/gguf_gateway',
      POSTGRES_PASSWORD_FILE: join(dir, 'postgres_password'),
    });
    assert.equal(stdout.trim(), 'redis://:r3dis-pw@redis:6379|postgres://gguf:pg.pw_1@postgres:5432/gguf_gateway|gone');
  });

  it('infra/docker/service-entrypoint.sh refuses the example password change-me unless told otherwise', async () => {
    writeFileSync(join(dir, 'default_password'), 'change-me\n');
    const env = { REDIS_URL: 'redis://redis:6379', REDIS_PASSWORD_FILE: join(dir, 'default_password') };
    const failed = await entrypoint(env).then(
      () => assert.fail('should exit non-zero'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /still holds the example password change-me.*ALLOW_DEFAULT_PASSWORDS=true/);
    const allowed = await entrypoint({ ...env, ALLOW_DEFAULT_PASSWORDS: 'true' });
    assert.match(allowed.stdout, /^redis:\/\/:change-me@redis:6379\|/);
  });

  it('infra/docker/healthcheck.mjs exits 0 only for a healthy answer', async () => {
    let status = 200;
    const server: Server = createServer((_req, res) => res.writeHead(status).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ping`;
    const check = (...args: string[]) =>
      run(process.execPath, [join(repoRoot, 'infra/docker/healthcheck.mjs'), url, ...args]).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    try {
      assert.equal(await check(), 0);
      status = 204;
      assert.equal(await check(), 0);
      assert.equal(await check('200'), 1, 'the all-in-one image wants 200: 204 means still starting');
      status = 503;
      assert.equal(await check(), 1);
    } finally {
      server.close();
    }
  });
});

describe('RunPod and Vast.ai templates', () => {
  const runpod = readFileSync(join(repoRoot, 'infra/runpod/README.md'), 'utf8');
  const vast = readFileSync(join(repoRoot, 'infra/vast/README.md'), 'utf8');

  it("gives a MODEL_PATH example that lands in the volume's models folder", () => {
    const example = /^\| `MODEL_PATH` +\| `([^`]+)`/m.exec(runpod)?.[1];
    assert.ok(example, 'no MODEL_PATH example');
    // MODEL_PATH is absolute, or relative to MODELS_DIR ($DATA_DIR/models).
    const modelsDir = resolveDirs(
      loadConfig(orchestratorConfigSchema, { DATA_DIR: '/runpod-volume', BACKENDS_FILE: '/b' }),
    ).modelsDir;
    const path = isAbsolute(example) ? example : join(modelsDir, example);
    assert.equal(dirname(path), '/runpod-volume/models', `${example} resolves to ${path}`);
  });

  it('tells users behind the platform proxy to set TRUST_PROXY_HOPS', () => {
    for (const text of [runpod, vast]) {
      assert.match(text, /TRUST_PROXY_HOPS/);
      assert.match(text, /failed-key throttle per\s+address/);
    }
  });
});

describe('CI workflow', () => {
  const ci = parse(readFileSync(join(repoRoot, '.github/workflows/ci.yml'), 'utf8')) as {
    jobs: Record<string, { steps: { run?: string; env?: Record<string, string> }[] }>;
  };
  const steps = Object.values(ci.jobs).flatMap((job) => job.steps);

  it('adds to PATH through $GITHUB_PATH, never by rebuilding it from the env context (which has no runner PATH)', () => {
    for (const step of steps) assert.equal(step.env?.PATH, undefined, `a step sets PATH: ${step.env?.PATH}`);
    assert.ok(steps.some((s) => /\/usr\/lib\/postgresql\/.*>> "\$GITHUB_PATH"/.test(s.run ?? '')));
  });
});

describe('scripts/install-test-tools', () => {
  it('keeps apt-get non-interactive through sudo, which resets the environment', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-install-tools-'));
    try {
      // A PATH with none of the tools, a non-root `id`, a sudo that resets the environment like the
      // real one, and an apt-get that records what it was run with.
      const bin = join(dir, 'bin');
      const log = join(dir, 'apt-get.log');
      mkdirSync(bin);
      symlinkSync('/usr/bin/sort', join(bin, 'sort'));
      const stub = (name: string, body: string) =>
        writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
      stub('id', 'echo 1000');
      stub('sudo', 'exec /usr/bin/env -i PATH="$PATH" "$@"');
      stub('env', 'exec /usr/bin/env "$@"');
      stub('apt-get', `echo "$1 DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-unset}" >> ${log}`);
      await run('/bin/bash', [join(repoRoot, 'scripts/install-test-tools')], { env: { PATH: bin } });
      const calls = readFileSync(log, 'utf8').trim().split('\n');
      assert.ok(calls.includes('install DEBIAN_FRONTEND=noninteractive'), calls.join('\n'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
