import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import type { Redis } from 'ioredis';
import {
  boundPort,
  closeServer,
  createLogger,
  createPgPool,
  createRedis,
  errorMiddleware,
  listen,
  PullQueue,
  type Pool,
} from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  FakeHub,
  LogCapture,
  repoRoot,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  writeTestGguf,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { LocalModelsRepository } from '../../src/admin/local-models.repository.js';
import { createModelPullsRouter } from '../../src/admin/model-pulls.router.js';
import { ModelPullsService } from '../../src/admin/model-pulls.service.js';

const MB = 1024 * 1024;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('pulls through the admin API, a real worker and the CLI', function () {
  this.timeout(60_000);
  let hub: FakeHub;
  let db: TestDatabase;
  let dir: string;
  let prefix: string;
  let pool: Pool;
  let redis: Redis;
  let queue: PullQueue;
  let server: Server;
  let baseUrl: string;
  let worker: ManagedProcess;

  async function cli(...args: string[]): Promise<CliRun> {
    const proc = startProcess(process.execPath, [join(repoRoot, 'packages/cli/dist/main.js'), ...args], {
      env: { PATH: process.env.PATH, GGUF_GATEWAY_URL: baseUrl, GGUF_GATEWAY_API_KEY: 'sk-admin-test' },
    });
    let stdout = '';
    let stderr = '';
    proc.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await proc.exited;
    return { code, stdout, stderr };
  }

  async function serve(file: string, bytes: number, seed: number, spec: { corrupt?: boolean } = {}) {
    const path = join(dir, `${seed}.src`);
    await writeTestGguf(path, bytes, seed);
    return hub.addFile('acme/cli-GGUF', file, { path, ...spec });
  }

  before(async () => {
    hub = await FakeHub.start();
    db = await createTestDatabase({ migrate: true });
    dir = await mkdtemp(join(tmpdir(), 'gg-cli-'));
    prefix = testRedisPrefix();
    pool = createPgPool(db.url, 2);
    redis = createRedis(testSettings.TEST_REDIS_URL, 'request-path');
    queue = new PullQueue(redis, prefix, () => undefined);
    await waitFor('the queue connection ready', async () => redis.status === 'ready');
    const app = express();
    app.use(
      '/admin/v1',
      createModelPullsRouter({
        pulls: new ModelPullsService(queue, new LocalModelsRepository(pool)),
        eventsPollMs: 100,
      }),
    );
    app.use(errorMiddleware(createLogger({ service: 'gateway', destination: new LogCapture() })));
    server = await listen(app, 0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${boundPort(server)}`;
    worker = startProcess(process.execPath, [join(repoRoot, 'services/worker/dist/main.js')], {
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: db.url,
        MODELS_DIR: join(dir, 'models'),
        HF_ENDPOINT: hub.url,
        // The fake CDN speaks plain HTTP on loopback.
        PULL_ALLOW_HTTP: 'true',
        PULL_ALLOWED_HOSTS: hub.cdnHost,
      },
    });
  });

  after(async () => {
    await stopProcess(worker);
    await closeServer(server);
    await queue.close();
    await redis.quit();
    await pool.end();
    await deleteRedisPrefix(prefix);
    await hub.stop();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams progress over SSE a few times per second, then completed', async () => {
    await serve('sse.gguf', 16 * MB, 31);
    hub.throttle(8 * MB);
    try {
      const { jobId } = (await (
        await fetch(`${baseUrl}/admin/v1/models/pull`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ source: { repo: 'acme/cli-GGUF', file: 'sse.gguf' } }),
        })
      ).json()) as { jobId: string };
      const started = Date.now();
      const res = await fetch(`${baseUrl}/admin/v1/jobs/${jobId}/events`);
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const events = [...(await res.text()).matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => ({
        event: m[1]!,
        data: JSON.parse(m[2]!) as { progress: { phase: string; bytesDone: number; bytesPerSec: number } | null },
      }));
      const seconds = (Date.now() - started) / 1000;
      const downloading = events.filter((e) => e.data.progress?.phase === 'downloading');
      assert.equal(events.at(-1)!.event, 'completed');
      assert.ok(downloading.length >= 3, `only ${downloading.length} downloading events in ${seconds} s`);
      assert.ok(
        events.length <= seconds * 6 + 6,
        `${events.length} events in ${seconds} s is more than a few per second`,
      );
      const done = downloading.map((e) => e.data.progress!.bytesDone);
      assert.deepEqual(
        done,
        [...done].sort((a, b) => a - b),
      );
      assert.ok(downloading.some((e) => e.data.progress!.bytesPerSec > 0));
    } finally {
      hub.throttle(null);
    }
  });

  it('gguf-gateway pull shows a progress bar and prints the model path; models lists it', async () => {
    const model = await serve('cli.gguf', 24 * MB, 32);
    hub.throttle(8 * MB);
    let run: CliRun;
    try {
      run = await cli('pull', 'acme/cli-GGUF', 'cli.gguf', '--sha256', model.sha256);
    } finally {
      hub.throttle(null);
    }
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), join(dir, 'models', 'cli.gguf'));
    assert.match(run.stderr, /\[#+-+\]\s+\d+%\s+[\d.]+ MiB \/ 24\.0 MiB\s+[\d.]+ MiB\/s\s+ETA \d\d:\d\d\s+downloading/);
    assert.match(run.stderr, new RegExp(`done: cli.gguf, 24.0 MiB, sha256 ${model.sha256}`));

    const list = await cli('models');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+SIZE\s+QUANT\s+CONTEXT\s+ARCH/);
    assert.match(list.stdout, /cli\.gguf\s+24\.0 MiB\s+F32\s+4096\s+llama/);
  });

  it('DELETE stops a running pull: the job ends cancelled and its partial file is gone', async () => {
    await serve('cancel.gguf', 16 * MB, 34);
    hub.throttle(4 * MB);
    try {
      const api = (method: string, path: string, body?: unknown) =>
        fetch(`${baseUrl}/admin/v1${path}`, {
          method,
          headers: { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const { jobId } = (await (
        await api('POST', '/models/pull', { source: { repo: 'acme/cli-GGUF', file: 'cancel.gguf' } })
      ).json()) as { jobId: string };
      await waitFor('the download to start', async () => {
        const job = (await (await api('GET', `/jobs/${jobId}`)).json()) as { progress: { bytesDone: number } | null };
        return (job.progress?.bytesDone ?? 0) > 0;
      });
      assert.equal((await api('DELETE', `/jobs/${jobId}`)).status, 202);
      const ended = await waitFor('the job to end', async () => {
        const job = (await (await api('GET', `/jobs/${jobId}`)).json()) as { state: string };
        return job.state === 'cancelled' || job.state === 'failed' || job.state === 'completed' ? job.state : null;
      });
      assert.equal(ended, 'cancelled');
      assert.equal(existsSync(join(dir, 'models', '.partial', 'cancel.gguf')), false);
      assert.equal(existsSync(join(dir, 'models', 'cancel.gguf')), false);
      assert.equal((await api('DELETE', `/jobs/${jobId}`)).status, 409);
    } finally {
      hub.throttle(null);
    }
  });

  it('gguf-gateway pull exits non-zero with the reason when the pull fails', async () => {
    await serve('corrupt.gguf', 1 * MB, 33, { corrupt: true });
    const run = await cli('pull', 'acme/cli-GGUF', 'corrupt.gguf');
    assert.equal(run.code, 1, worker.output());
    assert.match(run.stderr, /pull failed: sha256 mismatch for corrupt\.gguf: want [0-9a-f]{64} got [0-9a-f]{64}/);
  });

  it('gguf-gateway pull exits non-zero with the reason the gateway gives for a bad request', async () => {
    const run = await cli('pull', 'acme/cli-GGUF', '../../etc/passwd');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /error: 400: file "..\/..\/etc\/passwd" is not a plain path inside the repository/);
  });
});
