import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createLogger, createMetricsRegistry } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { ApiKeysService } from '../../src/api-keys.service.js';
import { createApp } from '../../src/app.js';
import { createAuthMetrics } from '../../src/auth.metrics.js';
import { AuthorizeService } from '../../src/authorize.service.js';
import type { KeysFileRepository } from '../../src/keys-file.repository.js';
import { MemoryLeases } from '../../src/leases.repository.js';
import { LimitsRepository } from '../../src/limits.repository.js';

const stubFile = (text: string) =>
  ({ path: '/run/secrets/api_keys', read: () => Promise.resolve({ text }) }) as unknown as KeysFileRepository;

describe('auth app', () => {
  // A client that never connects: these routes must not need Redis.
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  const logger = createLogger({ service: 'auth', destination: new LogCapture() });
  const registry = createMetricsRegistry('auth');
  const metrics = createAuthMetrics(registry, () => true);
  const keys = new ApiKeysService(stubFile(''), logger, metrics.keysLoaded);
  const settings = {
    leaseTtlSec: 60,
    failedAuthMax: 5,
    failedAuthWindowSec: 60,
    grantTtlMs: 0,
    limitsShared: () => false,
  };
  const authorizer = new AuthorizeService(
    keys,
    new LimitsRepository(redis, 't:'),
    new MemoryLeases(),
    [],
    metrics,
    settings,
  );
  const internalToken = 'unit-internal-token-0123456789';
  const app = createApp({ logger, registry, redis, keys, authorizer, internalToken });

  after(() => redis.disconnect());

  it('is live on /healthz and not ready on /readyz while no key is loaded', async () => {
    assert.equal((await request(app).get('/healthz')).status, 200);
    const ready = await request(app).get('/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'not_ready');
    assert.match(ready.body.checks.keys, /no API keys are loaded/);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await request(app).get('/v1/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'unknown_route');
  });

  it('answers an authorize body without a valid route with a 400 naming the field', async () => {
    const res = await request(app)
      .post('/v1/authorize')
      .set('authorization', `Bearer ${internalToken}`)
      .send({ key: 'x', model: null, route: 'teleport', ip: '::1' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.param, 'route');
  });

  it('answers a settle body with a negative or fractional token count with a 400 naming that field', async () => {
    for (const [field, value] of [
      ['promptTokens', -1],
      ['completionTokens', 1.5],
      ['completionTokens', '12'],
    ] as const) {
      const body = { lease: 'l-1', promptTokens: 1, completionTokens: 1, [field]: value };
      const res = await request(app).post('/v1/settle').set('authorization', `Bearer ${internalToken}`).send(body);
      assert.equal(res.status, 400, `${field}: ${value}`);
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.equal(res.body.error.param, field);
    }
  });

  it('answers a renew body without a lease with a 400 naming the field', async () => {
    const res = await request(app).post('/v1/renew').set('authorization', `Bearer ${internalToken}`).send({});
    assert.equal(res.status, 400);
    assert.equal(res.body.error.param, 'lease');
  });
});
