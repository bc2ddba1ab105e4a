import assert from 'node:assert/strict';
import { Worker } from 'bullmq';
import express, { type Express } from 'express';
import request from 'supertest';
import type { Redis } from 'ioredis';
import {
  createLogger,
  createPgPool,
  createRedis,
  errorMiddleware,
  MODEL_PULLS_QUEUE,
  PullQueue,
  pullCancelKey,
  pullJobId,
  pullQueuePrefix,
  type Pool,
} from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  LogCapture,
  PrivateRedis,
  testRedisPrefix,
  testSettings,
  waitFor,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { LocalModelsRepository } from '../../src/admin/local-models.repository.js';
import { createModelPullsRouter } from '../../src/admin/model-pulls.router.js';
import { ModelPullsService } from '../../src/admin/model-pulls.service.js';

function adminApp(queue: PullQueue, pool: Pool): Express {
  const app = express();
  app.use(
    '/admin/v1',
    createModelPullsRouter({ pulls: new ModelPullsService(queue, new LocalModelsRepository(pool)) }),
  );
  app.use(errorMiddleware(createLogger({ service: 'gateway', destination: new LogCapture() })));
  return app;
}

describe('admin model pull routes', () => {
  let db: TestDatabase;
  let pool: Pool;
  let redis: Redis;
  let prefix: string;
  let queue: PullQueue;
  let app: Express;

  beforeEach(async () => {
    db ??= await createTestDatabase({ migrate: true });
    pool ??= createPgPool(db.url, 2);
    prefix = testRedisPrefix();
    redis = createRedis(testSettings.TEST_REDIS_URL, 'request-path');
    queue = new PullQueue(redis, prefix, () => undefined);
    // The request path fails fast: a pull before the connection is up would be a 503.
    await waitFor('the queue connection ready', async () => redis.status === 'ready');
    app = adminApp(queue, pool);
  });

  afterEach(async () => {
    await queue.close();
    await redis.quit();
    await deleteRedisPrefix(prefix);
  });

  after(async () => {
    await pool.end();
    await db.drop();
  });

  const pull = (body: unknown) =>
    request(app)
      .post('/admin/v1/models/pull')
      .send(body as object);

  it('answers 400 with the reason for a bad source, and queues nothing', async () => {
    const bad: [unknown, string, RegExp][] = [
      [{}, 'source', /source must be/],
      [{ source: { repo: 'no-owner', file: 'm.gguf' } }, 'source.repo', /owner\/name/],
      [{ source: { repo: 'acme/m', file: '../../etc/passwd' } }, 'source.file', /not a plain path/],
      [{ source: { repo: 'acme/m', file: '/abs/m.gguf' } }, 'source.file', /not a plain path/],
      [{ source: { repo: 'acme/m', file: 'a//m.gguf' } }, 'source.file', /not a plain path/],
      [{ source: { repo: 'acme/../m', file: 'm.gguf' } }, 'source.repo', /owner\/name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf' }, name: '../m.gguf' }, 'name', /plain file name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf' }, name: 'dir/m.gguf' }, 'name', /plain file name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf' }, name: '..' }, 'name', /plain file name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf' }, name: 'm\u0000.gguf' }, 'name', /plain file name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf', revision: '../main' } }, 'source.revision', /branch, tag or commit/],
      [{ source: { url: 'file:///etc/passwd' } }, 'source.url', /http or https/],
      [{ source: { url: 'https://huggingface.co/' } }, 'name', /give a name/],
      [{ source: { repo: 'acme/m', file: 'm.gguf' }, sha256: 'abc' }, 'sha256', /64 hex digits/],
      [{ source: { url: 'https://example.com/m%E0%A4%A.gguf' } }, 'source.url', /malformed percent escape/],
      [{ source: { repo: 'acme/m', file: 'm-00001-of-00000.gguf' } }, 'source.file', /split part that cannot exist/],
    ];
    for (const [body, param, message] of bad) {
      const res = await pull(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.equal(res.body.error.code, 'invalid_pull');
      assert.equal(res.body.error.param, param, JSON.stringify(body));
      assert.match(res.body.error.message, message);
    }
    assert.deepEqual(await redis.keys(`${prefix}bull:model-pulls:pull-*`), []);
  });

  it('turns two identical pull requests into one job', async () => {
    const body = { source: { repo: 'acme/m-GGUF', file: 'm.Q4_K_M.gguf' } };
    const [a, b] = await Promise.all([pull(body), pull(body)]);
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(a.body.jobId, pullJobId(body.source));
    assert.equal(b.body.jobId, a.body.jobId);
    const again = await pull(body);
    assert.equal(again.body.deduplicated, true);
    const jobs = await redis.keys(`${prefix}bull:model-pulls:pull-*`);
    assert.deepEqual(jobs, [`${prefix}bull:model-pulls:${a.body.jobId}`]);
  });

  it('shows a queued job, and 404 for one that does not exist', async () => {
    const { body } = await pull({
      source: { repo: 'acme/m-GGUF', file: 'm.gguf', revision: 'v1' },
      sha256: 'A'.repeat(64),
    });
    const res = await request(app).get(`/admin/v1/jobs/${body.jobId}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.state, 'waiting');
    assert.deepEqual(res.body.source, { repo: 'acme/m-GGUF', file: 'm.gguf', revision: 'v1' });
    assert.equal(res.body.sha256, 'a'.repeat(64));
    const missing = await request(app).get('/admin/v1/jobs/pull-nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'job_not_found');
  });

  it('shows a presigned source URL with its signature redacted', async () => {
    const url = 'https://bucket.s3.amazonaws.com/m.gguf?X-Amz-Credential=AKIA-secret&X-Amz-Signature=sig-secret';
    const { body } = await pull({ source: { url } });
    const res = await request(app).get(`/admin/v1/jobs/${body.jobId}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.source, {
      url: 'https://bucket.s3.amazonaws.com/m.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED',
    });
  });

  it('marks a job cancelled for the worker on DELETE', async () => {
    const { body } = await pull({ source: { repo: 'acme/m-GGUF', file: 'm.gguf' } });
    const res = await request(app).delete(`/admin/v1/jobs/${body.jobId}`);
    assert.equal(res.status, 202);
    assert.equal(res.body.cancelRequested, true);
    assert.equal(await redis.exists(pullCancelKey(prefix, body.jobId)), 1);
    assert.equal((await request(app).delete('/admin/v1/jobs/pull-nothing')).status, 404);
  });

  it('replaces a waiting job marked for cancelling when the same source is pulled again', async () => {
    const source = { repo: 'acme/again-GGUF', file: 'again.gguf' };
    const { body } = await pull({ source });
    assert.equal((await request(app).delete(`/admin/v1/jobs/${body.jobId}`)).status, 202);
    const again = await pull({ source });
    assert.equal(again.status, 202);
    assert.equal(again.body.jobId, body.jobId);
    assert.equal(again.body.deduplicated, false);
    const view = await request(app).get(`/admin/v1/jobs/${body.jobId}`);
    assert.equal(view.body.state, 'waiting');
    assert.equal(view.body.cancelRequested, false);
    assert.equal(await redis.exists(pullCancelKey(prefix, body.jobId)), 0);
  });

  it('answers 409 to a pull of a source whose running job is being cancelled', async () => {
    const source = { repo: 'acme/running-GGUF', file: 'running.gguf' };
    const { body } = await pull({ source });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const connection = createRedis(testSettings.TEST_REDIS_URL, 'worker');
    const worker = new Worker(MODEL_PULLS_QUEUE, () => held, { connection, prefix: pullQueuePrefix(prefix) });
    try {
      await waitFor(
        'the job to be running',
        async () => ((await request(app).get(`/admin/v1/jobs/${body.jobId}`)).body.state === 'active' ? true : null),
        5_000,
      );
      assert.equal((await request(app).delete(`/admin/v1/jobs/${body.jobId}`)).status, 202);
      const again = await pull({ source });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'job_cancelling');
      assert.match(again.body.error.message, /is being cancelled; pull again once it has stopped/);
    } finally {
      release();
      await worker.close();
      await connection.quit();
    }
  });

  it('lists the models recorded in Postgres', async () => {
    await pool.query(
      `INSERT INTO models (name, path, bytes, sha256, source, architecture, quantization, context_length)
       VALUES ('m.gguf', '/models/m.gguf', 1234, $1, '{"repo":"acme/m","file":"m.gguf"}', 'llama', 'Q4_K_M', 4096)`,
      ['b'.repeat(64)],
    );
    const res = await request(app).get('/admin/v1/models');
    assert.equal(res.status, 200);
    assert.equal(res.body.object, 'list');
    assert.deepEqual(
      res.body.data.map((m: { name: string; bytes: number; contextLength: number }) => [
        m.name,
        m.bytes,
        m.contextLength,
      ]),
      [['m.gguf', 1234, 4096]],
    );
  });

  it('answers 503 with Retry-After at once while Redis is away, gone before or after the queue was made, and pulls again once it is back', async () => {
    const privateRedis = await PrivateRedis.start();
    const pull = { source: { repo: 'acme/m-GGUF', file: 'm.gguf' } };
    const assertUnavailable = async (queue: PullQueue) => {
      const started = Date.now();
      const res = await request(adminApp(queue, pool)).post('/admin/v1/models/pull').send(pull);
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '5');
      assert.match(res.body.error.message, /job queue is unavailable/);
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    };
    const connections: Redis[] = [];
    const queueOn = () => {
      const client = createRedis(privateRedis.url, 'request-path');
      client.on('error', () => undefined);
      connections.push(client);
      return new PullQueue(client, prefix, () => undefined);
    };
    const queues: PullQueue[] = [];
    try {
      // Made while Redis answers, which then goes away.
      queues.push(queueOn());
      await waitFor('the queue connection ready', async () => connections[0]!.status === 'ready');
      await privateRedis.stop();
      await assertUnavailable(queues[0]!);
      // Made while Redis is already away (a gateway started before it).
      queues.push(queueOn());
      await assertUnavailable(queues[1]!);
      // Back again: the same queues take pulls without a restart.
      await privateRedis.start();
      await waitFor('the queue connections ready', async () => connections.every((c) => c.status === 'ready'));
      for (const queue of queues) {
        const res = await request(adminApp(queue, pool)).post('/admin/v1/models/pull').send(pull);
        assert.equal(res.status, 202, JSON.stringify(res.body));
      }
    } finally {
      for (const queue of queues) await queue.close().catch(() => undefined);
      for (const client of connections) client.disconnect();
      await privateRedis.stop();
    }
  });
});
