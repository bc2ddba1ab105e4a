import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pendingMigrations } from '@gguf-gateway/db';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  MODEL_PULLS_QUEUE,
  pullJobId,
  pullQueuePrefix,
  type PullJobData,
  type PullProgress,
} from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  testRedisPrefix,
  testSettings,
  waitFor,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { runOrchestrator } from './orchestrator-process.js';

describe('orchestrator prepare (real Postgres and Redis)', function () {
  this.timeout(30_000);
  let db: TestDatabase;
  let prefix: string;
  let dir: string;
  let env: Record<string, string>;

  beforeEach(async () => {
    db = await createTestDatabase();
    prefix = testRedisPrefix();
    dir = mkdtempSync(join(tmpdir(), 'gg-prepare-'));
    writeFileSync(join(dir, 'api_keys'), 'admin:sk-admin-0123456789abcdef scope=admin\n');
    writeFileSync(
      join(dir, 'backends.yaml'),
      'models:\n  tiny:\n    tiers: [[local]]\nbackends:\n  local:\n    kind: llamacpp\n    url: http://inference:8180\n',
    );
    await writeTinyLlama(join(dir, 'tiny.gguf'));
    env = {
      PORT: String(await freePort()),
      DATA_DIR: dir,
      DATABASE_URL: db.url,
      REDIS_URL: testSettings.TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      API_KEYS_FILE: join(dir, 'api_keys'),
      BACKENDS_FILE: join(dir, 'backends.yaml'),
      MODEL_PATH: join(dir, 'tiny.gguf'),
      NVIDIA_SMI: join(dir, 'no-nvidia-smi'),
      GATE_TIMEOUT_MS: '5000',
    };
  });

  afterEach(async () => {
    await db.drop();
    await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes every gate, migrates the database and writes the router arguments, models preset and memory budget, then exits 0', async () => {
    const run = runOrchestrator('prepare', env);
    assert.equal(await run.exited, 0, run.output());
    assert.deepEqual(await pendingMigrations(db.url), []);
    const args = readFileSync(join(dir, 'llama-server.args'), 'utf8').trim().split('\n');
    const preset = join(dir, 'llama-server.models.ini');
    assert.deepEqual(args, [
      '--models-dir',
      join(dir, 'models'),
      '--models-preset',
      preset,
      '--no-models-autoload',
      '--models-max',
      '0',
    ]);
    // The default model lives outside MODELS_DIR: its section gives its path and the name `default`.
    const ini = readFileSync(preset, 'utf8');
    assert.match(ini, /\[\*\]\nn-gpu-layers = 0\nctx-size = \d+\nparallel = 2\nthreads = \d+\n/);
    assert.ok(ini.includes(`[tiny]\nalias = default,gpt-4o-mini\nmodel = ${join(dir, 'tiny.gguf')}\n`), ini);
    const budget = JSON.parse(readFileSync(join(dir, 'memory-budget.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual({ ...budget, bytes: typeof budget.bytes }, { device: 'cpu', bytes: 'number', gpus: [] });
    const passed = run.records().filter((r) => typeof r.msg === 'string' && /^gate \S+ passed$/.test(r.msg));
    assert.deepEqual(
      passed.map((r) => r.gate),
      ['postgres', 'redis', 'migrations', 'keys-file', 'backends-file', 'model', 'gpu', 'llama-args'],
    );
  });

  it("writes a preset section for each backends-file local: model, and MODEL_ALIASES and the `default` entry's aliases on the default model", async () => {
    writeFileSync(
      join(dir, 'backends.yaml'),
      [
        'models:',
        '  default:',
        '    aliases: [assistant]',
        '    tiers: [[local]]',
        '  embed:',
        '    aliases: [text-embedding-3-small]',
        `    local: ${join(dir, 'embed.gguf')}`,
        '    llama: { ctxSize: 512, mode: embeddings }',
        'backends:',
        '  local: { kind: llamacpp, url: http://inference:8180 }',
        '',
      ].join('\n'),
    );
    const run = runOrchestrator('prepare', { ...env, MODEL_ALIASES: 'gpt-4o-mini,gpt-4o' });
    assert.equal(await run.exited, 0, run.output());
    const ini = readFileSync(join(dir, 'llama-server.models.ini'), 'utf8');
    assert.ok(ini.includes('[tiny]\nalias = default,gpt-4o-mini,gpt-4o,assistant\n'), ini);
    assert.ok(
      ini.includes(
        `[embed]\nalias = text-embedding-3-small\nmodel = ${join(dir, 'embed.gguf')}\nctx-size = 512\nembedding = true\n`,
      ),
      ini,
    );
  });

  it('exits non-zero naming the keys file when it is missing', async () => {
    const run = runOrchestrator('prepare', { ...env, API_KEYS_FILE: join(dir, 'missing_keys') });
    assert.equal(await run.exited, 1);
    assert.match(
      run.output(),
      /gate keys-file failed: API_KEYS_FILE=\S+missing_keys cannot be read \(ENOENT\)\. Fix API_KEYS_FILE/,
    );
  });

  it('exits non-zero saying what is wrong with a broken backends file', async () => {
    writeFileSync(join(dir, 'backends.yaml'), 'models:\n  tiny: [unclosed\n');
    const run = runOrchestrator('prepare', env);
    assert.equal(await run.exited, 1);
    assert.match(run.output(), /gate backends-file failed: BACKENDS_FILE=\S+backends.yaml: not valid YAML/);
  });

  it('waits for Postgres, shows the wait on /status, and fails naming the gate when it never comes', async () => {
    const port = await freePort();
    const run = runOrchestrator('prepare', {
      ...env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
      GATE_TIMEOUT_MS: '2500',
    });
    const status = await waitFor('/status with the postgres gate waiting', async () => {
      const res = await fetch(`http://127.0.0.1:${env.PORT}/status`);
      const body = (await res.json()) as { gates: { name: string; state: string; lastError: string | null }[] };
      return body.gates[0]?.lastError ? body : null;
    });
    assert.equal(status.gates[0]!.state, 'waiting');
    assert.match(status.gates[0]!.lastError!, /ECONNREFUSED/);
    assert.equal(status.gates[1]!.state, 'pending');
    assert.equal(await run.exited, 1);
    assert.match(run.output(), /gate postgres failed: no success within 2500 ms .*Check DATABASE_URL/);
  });

  it('enqueues a pull for MODEL_REPO/MODEL_FILE, logs its progress, and passes once the worker has it on disk', async () => {
    const modelsDir = join(dir, 'models');
    mkdirSync(modelsDir);
    const connection = new Redis(testSettings.TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const jobIds: string[] = [];
    // Stands in for the worker service: same queue, same prefix, progress in the contract's shape.
    const worker = new Worker<PullJobData>(
      MODEL_PULLS_QUEUE,
      async (job) => {
        jobIds.push(job.id!);
        const total = 479_136;
        const step = (phase: PullProgress['phase'], bytesDone: number) =>
          job.updateProgress({ phase, bytesDone, bytesTotal: total, bytesPerSec: 1_000_000, etaSec: 1 });
        await step('resolving', 0);
        await step('downloading', total / 2);
        await new Promise((r) => setTimeout(r, 1200));
        await step('verifying', total);
        const path = join(modelsDir, 'tiny-q8.gguf');
        await writeTinyLlama(path);
        return { path };
      },
      { connection, prefix: pullQueuePrefix(prefix) },
    );
    try {
      const { MODEL_PATH: _unused, ...withoutPath } = env;
      const run = runOrchestrator('prepare', {
        ...withoutPath,
        MODELS_DIR: modelsDir,
        MODEL_REPO: 'acme/tiny-llama-GGUF',
        MODEL_FILE: 'tiny-q8.gguf',
      });
      assert.equal(await run.exited, 0, run.output());
      assert.deepEqual(jobIds, [pullJobId({ repo: 'acme/tiny-llama-GGUF', file: 'tiny-q8.gguf' })]);
      const progress = run.records().map((r) => r.msg);
      assert.ok(progress.includes('model pull downloading 50.0% 1.0 MiB/s eta 1 s'), progress.join('\n'));
      assert.ok(progress.includes('gate model passed'));
      // Pulled into MODELS_DIR, where the router finds it under its file name: no path needed.
      assert.match(
        readFileSync(join(dir, 'llama-server.models.ini'), 'utf8'),
        /\[tiny-q8\]\nalias = default,gpt-4o-mini\n$/,
      );
      assert.ok(readFileSync(join(dir, 'llama-server.args'), 'utf8').includes(`--models-dir\n${modelsDir}\n`));
    } finally {
      await worker.close();
      connection.disconnect();
    }
  });
});
