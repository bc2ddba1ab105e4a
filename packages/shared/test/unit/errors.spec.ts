import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import {
  ApiError,
  createHealthRouter,
  createLogger,
  createMetricsRegistry,
  errorMiddleware,
  notFoundHandler,
  requestIdMiddleware,
} from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';

function appWith(readinessProblem: string | null = null) {
  const app = express();
  app.use(requestIdMiddleware);
  app.use(express.json({ limit: 1024 }));
  app.use(createHealthRouter({ checks: { redis: () => readinessProblem }, registry: createMetricsRegistry('test') }));
  app.post('/echo', (req, res) => {
    res.json(req.body);
  });
  app.get('/limited', () => {
    throw new ApiError(429, 'Rate limit reached.', { code: 'rate_limit_exceeded', headers: { 'Retry-After': '7' } });
  });
  app.get('/boom', () => {
    throw new Error('database password=hunter2 leaked');
  });
  app.use(notFoundHandler);
  app.use(errorMiddleware(createLogger({ service: 'test', destination: new LogCapture() })));
  return app;
}

const isOpenAIError = (body: unknown) => {
  const error = (body as { error: Record<string, unknown> }).error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
};

describe('errors in the OpenAI shape', () => {
  it('answers broken JSON with 400 invalid_json', async () => {
    const res = await request(appWith()).post('/echo').set('content-type', 'application/json').send('{"model":');
    assert.equal(res.status, 400);
    isOpenAIError(res.body);
    assert.equal(res.body.error.type, 'invalid_request_error');
    assert.equal(res.body.error.code, 'invalid_json');
  });

  it('answers an oversize body with 413', async () => {
    const res = await request(appWith())
      .post('/echo')
      .send({ text: 'x'.repeat(5000) });
    assert.equal(res.status, 413);
    isOpenAIError(res.body);
    assert.equal(res.body.error.code, 'request_too_large');
  });

  it('relays an ApiError with its status, code and headers', async () => {
    const res = await request(appWith()).get('/limited');
    assert.equal(res.status, 429);
    assert.equal(res.headers['retry-after'], '7');
    assert.equal(res.body.error.code, 'rate_limit_exceeded');
    assert.equal(res.body.error.type, 'rate_limit_error');
  });

  it('hides the details of an unexpected error behind a 500', async () => {
    const res = await request(appWith()).get('/boom');
    assert.equal(res.status, 500);
    isOpenAIError(res.body);
    assert.ok(!JSON.stringify(res.body).includes('hunter2'));
  });

  it('answers an unknown route with a JSON 404 and the request id', async () => {
    const res = await request(appWith()).get('/nope').set('x-request-id', 'abc-1');
    assert.equal(res.status, 404);
    assert.equal(res.headers['x-request-id'], 'abc-1');
    isOpenAIError(res.body);
  });
});

describe('health router', () => {
  it('/readyz stays 200 but says degraded for a problem that leaves the service serving', async () => {
    const app = express();
    app.use(
      createHealthRouter({
        checks: { redis: () => null },
        degradedBy: { config: () => 'reload failed, serving the last good config' },
        registry: createMetricsRegistry('test'),
      }),
    );
    const res = await request(app).get('/readyz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      status: 'degraded',
      checks: { redis: 'ok', config: 'reload failed, serving the last good config' },
    });
  });

  it('/healthz is 200 even when a dependency is down', async () => {
    const res = await request(appWith('redis: connection refused')).get('/healthz');
    assert.equal(res.status, 200);
  });

  it('/readyz names what is not ready', async () => {
    const res = await request(appWith('redis: connection refused')).get('/readyz');
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { status: 'not_ready', checks: { redis: 'redis: connection refused' } });
    const ok = await request(appWith()).get('/readyz');
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body.checks, { redis: 'ok' });
  });

  it('/metrics serves prometheus text with default metrics', async () => {
    const res = await request(appWith()).get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /text\/plain/);
    assert.match(res.text, /process_cpu_user_seconds_total\{service="test"\}/);
  });
});
