import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
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
/** Whether something accepts a TCP connection on host:port. */
function accepts(host: string, port: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(Number(port), host, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** From this machine's outside address only the gateway's API and /ping answer; every internal port is loopback. */
async function assertOnlyPublicPortsOutside(env: Record<string, string>): Promise<void> {
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((i) => i?.family === 'IPv4' && !i.internal)?.address;
  assert.ok(outside, 'this machine has a non-loopback IPv4 address to probe from');
  assert.equal(await accepts(outside, env.GATEWAY_PORT!), true, 'the API answers outside');
  assert.equal(await accepts(outside, env.PORT_HEALTH!), true, '/ping answers outside');
  for (const name of [
    'GATEWAY_HEALTH_PORT',
    'AUTH_PORT',
    'METRICS_PORT',
    'WORKER_PORT',
    'INFERENCE_PORT',
    'LOCAL_REDIS_PORT',
    'LOCAL_POSTGRES_PORT',
  ]) {
    assert.equal(await accepts(outside, env[name]!), false, `${name} listens on loopback only`);
    assert.equal(await accepts('127.0.0.1', env[name]!), true, `${name} answers on loopback`);
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
    await assertOnlyPublicPortsOutside(env);

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
    const completion = await fetch(`http://127.0.0.1:${env.INFERENCE_PORT}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INFERENCE_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
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
