import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  createTestDatabase,
  freePort,
  llamaServerBinary,
  testRedisPrefix,
  deleteRedisPrefix,
  testSettings,
  waitFor,
  freePorts,
  SUPERVISED_PORT_VARIABLES,
} from '@gguf-gateway/testkit';
import type { OrchestratorStatus } from '../../src/app.js';
import { runOrchestrator, type OrchestratorProcess } from './orchestrator-process.js';

const INFERENCE_KEY = 'sk-inference-0123456789abcdef';
const crashOnFile = pathToFileURL(fileURLToPath(new URL('../fixtures/crash-on-file.mjs', import.meta.url))).href;

const isGone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

/**
 * The all-in-one stack as local processes: its own redis-server and Postgres under DATA_DIR, the
 * services from their dist folders, and the real llama-server serving the tiny model.
 */
const LISTEN = '0A';
const LOOPBACK = new Set(['0100007F', '00000000000000000000000001000000']);
const ANY = new Set(['00000000', '00000000000000000000000000000000']);

/**
 * The local addresses (hex, as the kernel writes them) of the sockets listening on `port`, read
 * from /proc/net/tcp and tcp6: which interfaces a port is bound to, without sending a packet.
 */
function listenAddresses(port: string): string[] {
  const hexPort = Number(port).toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[3] === LISTEN && f[1]?.endsWith(`:${hexPort}`))
      .map((f) => f[1]!.split(':')[0]!),
  );
}

/** Only the gateway's API and /ping listen on every interface; every internal port is loopback only. */
function assertOnlyPublicPortsOutside(env: Record<string, string>): void {
  for (const name of ['GATEWAY_PORT', 'PORT_HEALTH']) {
    assert.ok(
      listenAddresses(env[name]!).some((a) => ANY.has(a)),
      `${name} listens on every interface`,
    );
  }
  for (const name of [
    'PORT',
    'GATEWAY_HEALTH_PORT',
    'AUTH_PORT',
    'METRICS_PORT',
    'WORKER_PORT',
    'INFERENCE_PORT',
    'LOCAL_REDIS_PORT',
    'LOCAL_POSTGRES_PORT',
  ]) {
    const addresses = listenAddresses(env[name]!);
    assert.ok(addresses.length > 0, `${name} listens`);
    assert.ok(
      addresses.every((a) => LOOPBACK.has(a)),
      `${name} listens on loopback only (${addresses.join(', ')})`,
    );
  }
}

describe('orchestrator supervise (the all-in-one stack as local processes)', function () {
  this.timeout(120_000);
  let dir: string;
  let env: Record<string, string>;
  let run: OrchestratorProcess | null = null;
  const prefix = testRedisPrefix();

  before(async () => {
    // As root, Postgres runs as the postgres user: it must be able to reach DATA_DIR.
    dir = mkdtempSync(join(tmpdir(), 'gg-supervise-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'api_keys'), 'admin:sk-admin-0123456789abcdef scope=admin\n');
    await writeTinyLlama(join(dir, 'tiny.gguf'));
    const ports = await freePorts(SUPERVISED_PORT_VARIABLES);
    writeFileSync(
      join(dir, 'backends.yaml'),
      `models:\n  tiny:\n    tiers: [[local]]\nbackends:\n  local:\n    kind: llamacpp\n    url: http://127.0.0.1:${ports.INFERENCE_PORT}\n`,
    );
    env = {
      ...ports,
      DATA_DIR: dir,
      REDIS_KEY_PREFIX: prefix,
      API_KEYS_FILE: join(dir, 'api_keys'),
      BACKENDS_FILE: join(dir, 'backends.yaml'),
      MODEL_PATH: join(dir, 'tiny.gguf'),
      NVIDIA_SMI: join(dir, 'no-nvidia-smi'),
      LLAMA_SERVER_BIN: await llamaServerBinary(),
      LLAMA_CTX_SIZE: '1024',
      LLAMA_THREADS: '1',
      INFERENCE_API_KEY: INFERENCE_KEY,
      RESTART_BACKOFF_MS: '200',
      SHUTDOWN_GRACE_MS: '5000',
      GATE_TIMEOUT_MS: '20000',
    };
  });

  afterEach(async () => {
    if (run) {
      run.signal('SIGTERM');
      await run.exited;
      run = null;
    }
  });

  after(async () => {
    await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  const ping = () =>
    fetch(`http://127.0.0.1:${env.PORT_HEALTH}/ping`).then(
      (r) => r.status,
      () => 0,
    );
  const status = async () => (await (await fetch(`http://127.0.0.1:${env.PORT}/status`)).json()) as OrchestratorStatus;

  it('answers /ping 204 then 200, restarts a killed llama-server, and drains and exits 0 on SIGTERM', async () => {
    run = runOrchestrator('supervise', env);
    const seen = new Set<number>();
    await waitFor(
      '/ping 200',
      async () => {
        const code = await ping();
        seen.add(code);
        if (run!.hasExited()) throw new Error(`supervise exited:\n${run!.output()}`);
        return code === 200 ? true : null;
      },
      90_000,
      50,
    );
    assert.ok(seen.has(204), `saw ${[...seen].join(', ')} before 200`);
    const ready = await status();
    assert.equal(ready.phase, 'ready');
    assert.deepEqual(
      ready.processes.map((p) => [p.name, p.state]),
      ['redis', 'postgres', 'auth', 'metrics', 'worker', 'llama-server', 'gateway'].map((n) => [n, 'ready']),
    );
    assert.ok(ready.gates.every((g) => g.state === 'passed'));
    assertOnlyPublicPortsOutside(env);

    const llama = ready.processes.find((p) => p.name === 'llama-server')!;
    process.kill(llama.pid!, 'SIGKILL');
    await waitFor(
      '/ping 204 while llama-server restarts',
      async () => ((await ping()) === 204 ? true : null),
      5000,
      20,
    );
    const back = await waitFor('llama-server restarted and ready', async () => {
      const now = (await status()).processes.find((p) => p.name === 'llama-server')!;
      return now.state === 'ready' && now.pid !== llama.pid ? now : null;
    });
    assert.equal(back.restarts, 1);
    // llama-server runs as a router over the models folder and the preset the gates wrote: the
    // default model answers to `default` once loaded (the gateway loads it; here, by hand).
    const router = (path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${env.INFERENCE_PORT}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${INFERENCE_KEY}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const load = await router('/models/load', { model: 'default' });
    assert.equal(load.status, 200, await load.text());
    await waitFor('the default model loaded', async () => {
      const { data } = (await (await router('/models')).json()) as {
        data: { id: string; status: { value: string } }[];
      };
      return data.find((m) => m.id === 'tiny')?.status.value === 'loaded' ? true : null;
    });
    const completion = await router('/v1/chat/completions', {
      model: 'default',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
    });
    assert.equal(completion.status, 200, 'requests are served again after the restart');
    assert.equal(await ping(), 200);

    const finished = run;
    run = null;
    finished.signal('SIGTERM');
    assert.equal(await finished.exited, 0, finished.output());
    const stops = finished
      .records()
      .map((r) => String(r.msg))
      .filter((m) => m.startsWith('stopping '));
    assert.deepEqual(stops, [
      'stopping gateway',
      'stopping llama-server',
      'stopping worker',
      'stopping metrics',
      'stopping auth',
      'stopping postgres',
      'stopping redis',
    ]);
  });

  it('exits non-zero naming the keys file when it is missing, before starting any service', async () => {
    const db = await createTestDatabase();
    const failed = runOrchestrator('supervise', {
      ...env,
      API_KEYS_FILE: join(dir, 'missing_keys'),
      REDIS_URL: testSettings.TEST_REDIS_URL,
      DATABASE_URL: db.url,
    });
    const code = await failed.exited;
    await db.drop();
    assert.equal(code, 1);
    assert.match(failed.output(), /gate keys-file failed: API_KEYS_FILE=\S+missing_keys cannot be read/);
    assert.ok(!failed.output().includes('starting auth'));
  });

  it('exits non-zero asking for a model when none is configured', async () => {
    const db = await createTestDatabase();
    const { MODEL_PATH: _none, ...withoutModel } = env;
    const failed = runOrchestrator('supervise', {
      ...withoutModel,
      REDIS_URL: testSettings.TEST_REDIS_URL,
      DATABASE_URL: db.url,
    });
    const code = await failed.exited;
    await db.drop();
    assert.equal(code, 1);
    assert.match(
      failed.output(),
      /gate model failed: no default model configured: set MODEL_REPO\+MODEL_FILE or MODEL_PATH/,
    );
    assert.ok(!failed.output().includes('starting gateway'));
  });

  it('kills the processes it started when it crashes, so their ports are free for the next start', async () => {
    const crashFile = join(dir, 'crash');
    const crashing = runOrchestrator('supervise', {
      ...env,
      // A Postgres that never answers: supervise sits at the postgres gate with its local Redis running.
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${crashOnFile}`,
      CRASH_FILE: crashFile,
    });
    let redisPid = 0;
    try {
      const redis = await waitFor('the local redis ready', async () => {
        if (crashing.hasExited()) throw new Error(`supervise exited:\n${crashing.output()}`);
        const now = await status().catch(() => null);
        return now?.processes.find((p) => p.name === 'redis' && p.state === 'ready') ?? null;
      });
      redisPid = redis.pid!;
      writeFileSync(crashFile, '');
      assert.equal(await crashing.exited, 1);
      assert.match(crashing.output(), /uncaught exception/);
      await waitFor('redis-server gone', async () => (isGone(redisPid) ? true : null), 5000, 50);
    } finally {
      if (!crashing.hasExited()) crashing.signal('SIGKILL');
      if (redisPid && !isGone(redisPid)) process.kill(redisPid, 'SIGKILL');
    }
  });
});
