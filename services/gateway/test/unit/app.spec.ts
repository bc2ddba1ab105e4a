import assert from 'node:assert/strict';
import request from 'supertest';
import { createLogger, createMetricsRegistry, parseBackendsFile } from '@gguf-gateway/shared';
import { LogCapture, TEST_AUTH_INTERNAL_TOKEN } from '@gguf-gateway/testkit';
import { createApp } from '../../src/app.js';
import { AuthClient } from '../../src/authorization/auth.client.js';
import { ModelRouter } from '../../src/routing/model-router.js';
import type { UsageEventsPublisher } from '../../src/inference/usage-events.publisher.js';

describe('gateway app', () => {
  const auth = new AuthClient(new URL('http://127.0.0.1:9'), 100, TEST_AUTH_INTERNAL_TOKEN);
  const logs = new LogCapture();
  const app = createApp({
    logger: createLogger({ service: 'gateway', destination: logs }),
    registry: createMetricsRegistry('gateway'),
    readiness: { dependency: () => 'not connected yet' },
    isReady: () => false,
    auth,
    router: new ModelRouter(
      parseBackendsFile('models: {m: {tiers: [[b]]}}\nbackends: {b: {kind: llamacpp, url: "http://127.0.0.1:9"}}'),
      () => undefined,
    ),
    usageStream: { append: () => Promise.resolve() } as unknown as UsageEventsPublisher,
    timeouts: { connectMs: 100, firstByteMs: 100, idleMs: 100, clientStallMs: 100, keepAliveIdleMs: 100 },
    bodyLimitBytes: 1024,
    jsonMaxDepth: 400,
  });

  after(() => auth.close());

  it('is live on /healthz while a dependency is not ready, and /readyz says not ready without naming it', async () => {
    assert.equal((await request(app).get('/healthz')).status, 200);
    const ready = await request(app).get('/readyz');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: 'not_ready' });
    assert.equal((await request(app).get('/ping')).status, 204);
    // `/health` is the seed project's JSON probe (answerProbe): 503 while initializing.
    assert.equal((await request(app).get('/health')).status, 503);
  });

  it('logs /readyz answering 503 while starting at info, not as an error', async () => {
    assert.equal((await request(app).get('/readyz')).status, 503);
    const line = logs.records().findLast((r) => (r.req as { url?: string } | undefined)?.url === '/readyz');
    assert.equal(line?.level, 'info', JSON.stringify(line));
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await request(app).get('/v1/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'unknown_route');
  });

  it('checks the key before it looks at the body: auth unreachable answers 503, not the 400 of the body', async () => {
    const res = await request(app).post('/v1/chat/completions').set('content-type', 'text/plain').send('hello');
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'auth_unavailable');
    assert.ok(res.headers['x-request-id']);
  });
});
