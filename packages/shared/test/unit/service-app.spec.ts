import assert from 'node:assert/strict';
import { Router } from 'express';
import request from 'supertest';
import { LogCapture } from '@gguf-gateway/testkit';
import {
  ApiError,
  createLogger,
  createMetricsRegistry,
  createPingApp,
  createServiceApp,
  type PingState,
} from '@gguf-gateway/shared';

describe('the service skeleton', () => {
  const logger = createLogger({ service: 'test', destination: new LogCapture() });
  let keys = 2;
  let fileProblem: string | null = null;
  const routes = Router();
  routes.get('/v1/boom', () => {
    throw new ApiError(418, 'no coffee here', { code: 'teapot' });
  });
  const app = createServiceApp({
    logger,
    registry: createMetricsRegistry('test'),
    checks: { keys: () => (keys === 0 ? 'no keys loaded' : { ok: `ok (${keys} keys)` }) },
    degradedBy: { keys: () => fileProblem, spool: () => null },
    routes: [routes],
  });

  it('says ready with what a passing check shows, degraded when the same name degrades, not ready when it fails', async () => {
    const ready = await request(app).get('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready', checks: { keys: 'ok (2 keys)', spool: 'ok' } });

    fileProblem = 'line 3 is broken';
    const degraded = await request(app).get('/readyz');
    assert.equal(degraded.status, 200);
    assert.deepEqual(degraded.body, { status: 'degraded', checks: { keys: 'line 3 is broken', spool: 'ok' } });

    keys = 0;
    const notReady = await request(app).get('/readyz');
    assert.equal(notReady.status, 503);
    assert.deepEqual(notReady.body, { status: 'not_ready', checks: { keys: 'no keys loaded', spool: 'ok' } });
  });

  it('is live on /healthz, serves /metrics and tags every answer with a request id', async () => {
    const live = await request(app).get('/healthz');
    assert.equal(live.status, 200);
    assert.match(live.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.match((await request(app).get('/metrics')).text, /process_cpu_user_seconds_total/);
  });

  it("answers the service's routes' errors and unknown routes in one JSON shape", async () => {
    const boom = await request(app).get('/v1/boom');
    assert.equal(boom.status, 418);
    assert.equal(boom.body.error.code, 'teapot');
    const missing = await request(app).get('/v1/nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'unknown_route');
  });
});

describe('the probe server', () => {
  let state: PingState = 'initializing';
  const app = createPingApp(() => state);

  it('answers /ping 204 initializing, 200 ready, 503 unavailable, and /health the same as JSON', async () => {
    const seen: [number, number, string][] = [];
    for (const now of ['initializing', 'ready', 'unavailable'] as const) {
      state = now;
      const health = await request(app).get('/health');
      seen.push([(await request(app).get('/ping')).status, health.status, health.body.status]);
    }
    assert.deepEqual(seen, [
      [204, 503, 'initializing'],
      [200, 200, 'ready'],
      [503, 503, 'unavailable'],
    ]);
    assert.equal((await request(app).get('/readyz')).status, 404, 'no details without health options');
  });
});
