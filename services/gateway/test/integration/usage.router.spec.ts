import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createLogger, createPgPool, errorMiddleware, type Pool } from '@gguf-gateway/shared';
import { createTestDatabase, freePort, LogCapture, type TestDatabase } from '@gguf-gateway/testkit';
import { createUsageRouter } from '../../src/admin/usage.router.js';
import { UsageRepository } from '../../src/admin/usage.repository.js';
import { UsageService } from '../../src/admin/usage.service.js';

describe('GET /admin/v1/usage', () => {
  let db: TestDatabase;
  let pool: Pool;
  let app: express.Express;

  before(async () => {
    db = await createTestDatabase({ migrate: true });
    pool = createPgPool(db.url);
    app = express();
    app.use('/admin/v1', createUsageRouter({ usage: new UsageService(new UsageRepository(pool)) }));
    app.use(errorMiddleware(createLogger({ service: 'gateway', destination: new LogCapture() })));
    await pool.query(`
      INSERT INTO usage_events (request_id, ts, key_id, model, backend, route, status, stream, prompt_tokens,
        completion_tokens, duration_ms, error_code, usage_source, cost_usd) VALUES
      ('r1', '2026-11-19T23:30:00Z', 'alice', 'llama', 'local', 'chat', 200, true, 100, 50, 10, NULL, 'upstream', 0.5),
      ('r2', '2026-11-20T08:00:00Z', 'alice', 'llama', 'local', 'chat', 200, false, 10, 5, 10, NULL, 'upstream', 0.05),
      ('r3', '2026-11-20T09:00:00Z', 'alice', 'qwen', 'local', 'chat', 429, false, 0, 0, 1, 'rate_limit_exceeded', 'upstream', 0),
      ('r4', '2026-11-20T10:00:00Z', 'bob', 'llama', 'local', 'chat', 200, false, 20, 10, 10, NULL, 'upstream', 0.1)`);
    // The rollup holds days whose raw events retention has already deleted.
    await pool.query(`
      INSERT INTO usage_daily (day, key_id, model, requests, errors, prompt_tokens, completion_tokens, cost_usd) VALUES
      ('2026-01-05', 'alice', 'llama', 1000, 3, 100000, 50000, 12.5),
      ('2026-11-20', 'alice', 'llama', 1, 0, 10, 5, 0.05),
      ('2026-11-20', 'bob', 'llama', 1, 0, 20, 10, 0.1)`);
  });

  after(async () => {
    await pool.end();
    await db.drop();
  });

  it('sums exact time ranges from the raw events, per key and model and in total', async () => {
    const res = await request(app).get('/admin/v1/usage?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z');
    assert.equal(res.status, 200);
    assert.equal(res.body.source, 'usage_events');
    assert.deepEqual(res.body.totals, {
      requests: 3,
      errors: 1,
      prompt_tokens: 30,
      completion_tokens: 15,
      total_tokens: 45,
      cost_usd: 0.15,
    });
    assert.deepEqual(
      res.body.data.map((g: { key_id: string; model: string; requests: number }) => [g.key_id, g.model, g.requests]),
      [
        ['alice', 'llama', 1],
        ['alice', 'qwen', 1],
        ['bob', 'llama', 1],
      ],
    );
  });

  it('filters by key and model', async () => {
    const res = await request(app).get(
      '/admin/v1/usage?key=alice&model=llama&from=2026-11-19T00:00:00Z&to=2026-11-21T00:00:00Z',
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.key, 'alice');
    assert.deepEqual(res.body.totals.requests, 2);
    assert.deepEqual(res.body.totals.prompt_tokens, 110);
  });

  it('answers whole days from the daily rollup, which outlives raw event retention', async () => {
    const res = await request(app).get('/admin/v1/usage?key=alice&from=2026-01-01&to=2026-01-31');
    assert.equal(res.status, 200);
    assert.equal(res.body.source, 'usage_daily');
    assert.equal(res.body.to, '2026-02-01T00:00:00.000Z', 'the `to` day is included');
    assert.deepEqual(res.body.totals, {
      requests: 1000,
      errors: 3,
      prompt_tokens: 100000,
      completion_tokens: 50000,
      total_tokens: 150000,
      cost_usd: 12.5,
    });
  });

  it('answers zero totals and no groups for a range without usage', async () => {
    const res = await request(app).get('/admin/v1/usage?from=2020-01-01&to=2020-01-02');
    assert.equal(res.status, 200);
    assert.equal(res.body.totals.requests, 0);
    assert.deepEqual(res.body.data, []);
  });

  for (const [query, param] of [
    ['from=yesterday', 'from'],
    ['to=2026-13-45', 'to'],
    ['from=2026-11-20T10:00:00', 'from'],
    ['from=2026-11-21&to=2026-11-20', 'from'],
    ['key=a&key=b', 'key'],
  ] as const) {
    it(`answers 400 naming '${param}' for ?${query}`, async () => {
      const res = await request(app).get(`/admin/v1/usage?${query}`);
      assert.equal(res.status, 400);
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.equal(res.body.error.param, param);
    });
  }

  it('answers 503 with Retry-After in the OpenAI shape when Postgres is down', async () => {
    const down = createPgPool(`postgres://postgres@127.0.0.1:${await freePort()}/gone`);
    const isolated = express();
    isolated.use('/admin/v1', createUsageRouter({ usage: new UsageService(new UsageRepository(down)) }));
    isolated.use(errorMiddleware(createLogger({ service: 'gateway', destination: new LogCapture() })));
    try {
      const res = await request(isolated).get('/admin/v1/usage');
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '5');
      assert.equal(res.body.error.type, 'server_error');
      assert.match(res.body.error.message, /usage database is unavailable/);
    } finally {
      await down.end();
    }
  });
});
