import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { FakeHub, llamaServerBinary, waitFor, freePorts, SUPERVISED_PORT_VARIABLES } from '@gguf-gateway/testkit';
import type { OrchestratorStatus } from '../../services/orchestrator/src/app.js';
import {
  runOrchestrator,
  type OrchestratorProcess,
} from '../../services/orchestrator/test/integration/orchestrator-process.js';

const API_KEY = 'sk-e2e-admin-0123456789abcdef';

/**
 * The all-in-one container's entrypoint as local processes: `orchestrator supervise` with its own
 * redis-server and Postgres, the real auth, metrics, worker and gateway, and llama-server serving
 * the tiny model, driven through the official OpenAI SDK.
 */
describe('all-in-one: orchestrator supervise through the OpenAI SDK', function () {
  this.timeout(180_000);
  let dir: string;
  let env: Record<string, string>;
  let run: OrchestratorProcess | null = null;
  let openai: OpenAI;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-all-in-one-'));
    chmodSync(dir, 0o755); // as root, Postgres runs as the postgres user and must reach DATA_DIR
    const ports = await freePorts(SUPERVISED_PORT_VARIABLES);
    writeFileSync(join(dir, 'api_keys'), `admin:${API_KEY} scope=admin\n`);
    // Nothing routed by hand: llama-server's router serves the default model (MODEL_PATH or
    // MODEL_REPO/MODEL_FILE) as `default`, and every model on disk by its name.
    writeFileSync(join(dir, 'backends.yaml'), 'models: {}\nbackends: {}\n');
    await writeTinyLlama(join(dir, 'tiny.gguf'));
    env = {
      ...ports,
      DATA_DIR: dir,
      API_KEYS_FILE: join(dir, 'api_keys'),
      BACKENDS_FILE: join(dir, 'backends.yaml'),
      MODEL_PATH: join(dir, 'tiny.gguf'),
      NVIDIA_SMI: join(dir, 'no-nvidia-smi'),
      LLAMA_SERVER_BIN: await llamaServerBinary(),
      LLAMA_CTX_SIZE: '4096',
      LLAMA_PARALLEL: '2',
      LLAMA_THREADS: '1',
      RESTART_BACKOFF_MS: '200',
      SHUTDOWN_GRACE_MS: '20000',
    };
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${ports.GATEWAY_PORT}/v1`, apiKey: API_KEY, maxRetries: 0 });
  });

  after(async () => {
    if (run && !run.hasExited()) {
      run.signal('SIGKILL');
      await run.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const ping = () =>
    fetch(`http://127.0.0.1:${env.PORT_HEALTH}/ping`).then(
      (r) => r.status,
      () => 0,
    );
  const status = async () => (await (await fetch(`http://127.0.0.1:${env.PORT}/status`)).json()) as OrchestratorStatus;
  const chat = () =>
    openai.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });

  it('answers /ping 204 while starting and 200 once the gateway is ready', async () => {
    run = runOrchestrator('supervise', env);
    const seen = new Set<number>();
    await Promise.race([
      waitFor(
        '/ping 200',
        async () => {
          const code = await ping();
          seen.add(code);
          return code === 200 ? true : null;
        },
        120_000,
        50,
      ),
      run.exited.then((code) => {
        throw new Error(`supervise exited with ${code}:\n${run!.output().slice(-4000)}`);
      }),
    ]);
    assert.ok(seen.has(204), `saw ${[...seen].join(', ')} before 200`);
    assert.deepEqual(
      (await status()).processes.map((p) => p.name),
      ['redis', 'postgres', 'auth', 'metrics', 'worker', 'llama-server', 'gateway'],
    );
  });

  it('serves an OpenAI SDK chat completion through the gateway', async () => {
    const completion = await chat();
    assert.equal(completion.object, 'chat.completion');
    assert.ok(completion.usage!.completion_tokens > 0);
  });

  it('restarts a SIGKILLed llama-server, and requests succeed again', async () => {
    const before = (await status()).processes.find((p) => p.name === 'llama-server')!;
    process.kill(before.pid!, 'SIGKILL');
    await waitFor('llama-server restarted and ready', async () => {
      const now = (await status()).processes.find((p) => p.name === 'llama-server')!;
      return now.state === 'ready' && now.pid !== before.pid ? true : null;
    });
    const completion = await waitFor('a completion after the restart', () => chat().catch(() => null), 30_000, 250);
    assert.ok(completion.choices[0]!.message);
  });

  it('lets a stream in flight at SIGTERM finish, then stops everything and exits 0', async () => {
    const stream = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'tell me a long story' }],
      max_tokens: 1500,
      stream: true,
      // llama.cpp's own option: the random tiny model must not stop early at an end token.
      ...({ ignore_eos: true } as object),
    });
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunks++ === 0) run!.signal('SIGTERM');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'length', 'the stream ran to its end');
    assert.ok(chunks > 100, `only ${chunks} chunks`);
    const finished = run!;
    assert.equal(await finished.exited, 0, finished.output().slice(-4000));
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

  it('pulls a missing MODEL_REPO/MODEL_FILE from the hub through the worker, logs its progress, then serves it', async () => {
    const hub = await FakeHub.start();
    try {
      // The tiny model padded to 4 MB (llama.cpp ignores bytes after the tensor data), so that the
      // hub's 1 MB/s sends several chunks and the pull is seen downloading.
      const padded = join(dir, 'tiny-padded.gguf');
      writeFileSync(padded, Buffer.concat([readFileSync(join(dir, 'tiny.gguf')), Buffer.alloc(3_600_000)]));
      await hub.addFile('acme/tiny-llama-GGUF', 'tiny-llama-q8.gguf', { path: padded });
      hub.throttle(1_000_000);
      const { MODEL_PATH: _served, ...withoutPath } = env;
      run = runOrchestrator('supervise', {
        ...withoutPath,
        MODEL_REPO: 'acme/tiny-llama-GGUF',
        MODEL_FILE: 'tiny-llama-q8.gguf',
        HF_ENDPOINT: hub.url,
        // The fake CDN speaks plain HTTP on loopback.
        PULL_ALLOW_HTTP: 'true',
        PULL_ALLOWED_HOSTS: `${new URL(hub.url).host},${hub.cdnHost}`,
      });
      await Promise.race([
        waitFor('/ping 200', async () => ((await ping()) === 200 ? true : null), 120_000, 100),
        run.exited.then((code) => {
          throw new Error(`supervise exited with ${code}:\n${run!.output().slice(-4000)}`);
        }),
      ]);
      const messages = run.records().map((r) => String(r.msg));
      assert.ok(messages.includes('default model missing: pull enqueued for the worker'));
      assert.ok(
        messages.some((m) => /^model pull downloading \d+\.\d%/.test(m)),
        messages.filter((m) => m.startsWith('model pull')).join('\n'),
      );
      const gate = (await status()).gates.find((g) => g.name === 'model')!;
      assert.match(gate.detail!, /models\/tiny-llama-q8\.gguf/);
      const completion = await chat();
      assert.equal(completion.object, 'chat.completion');
    } finally {
      run!.signal('SIGTERM');
      await run!.exited;
      await hub.stop();
    }
  });
});
