import assert from 'node:assert/strict';
import request from 'supertest';
import { createLogger, createMetricsRegistry } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { createApp } from '../../src/app.js';

describe('auth app', () => {
  const app = createApp({
    logger: createLogger({ service: 'auth', destination: new LogCapture() }),
    registry: createMetricsRegistry('auth'),
    readiness: { dependency: () => 'not connected yet' },
  });

  it('is live on /healthz while a dependency is not ready', async () => {
    assert.equal((await request(app).get('/healthz')).status, 200);
    const ready = await request(app).get('/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.checks.dependency, 'not connected yet');
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await request(app).get('/v1/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'unknown_route');
  });
});
