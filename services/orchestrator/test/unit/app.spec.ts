import assert from 'node:assert/strict';
import request from 'supertest';
import { createLogger, createMetricsRegistry } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { createApp, createPingApp, type Phase } from '../../src/app.js';
import { resolveDataDir } from '../../src/data-dir.js';
import { createStatusMetrics } from '../../src/status.metrics.js';

describe('orchestrator app', () => {
  const registry = createMetricsRegistry('orchestrator');
  const metrics = createStatusMetrics(registry);
  const app = createApp({
    logger: createLogger({ service: 'orchestrator', destination: new LogCapture() }),
    registry,
    readiness: { gates: () => 'gates starting' },
    status: () => ({
      mode: 'prepare',
      phase: 'starting',
      gates: [
        {
          name: 'postgres',
          state: 'waiting',
          waitsFor: 'Postgres to accept connections',
          detail: null,
          lastError: 'connect ECONNREFUSED 127.0.0.1:5432',
          attempts: 4,
          durationMs: null,
        },
      ],
      processes: [],
    }),
  });

  it('is live on /healthz while the gates are not passed, and says so on /readyz', async () => {
    assert.equal((await request(app).get('/healthz')).status, 200);
    const ready = await request(app).get('/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.checks.gates, 'gates starting');
  });

  it('shows every gate with its state and last error on /status', async () => {
    const res = await request(app).get('/status');
    assert.equal(res.status, 200);
    assert.equal(res.body.gates[0].state, 'waiting');
    assert.equal(res.body.gates[0].lastError, 'connect ECONNREFUSED 127.0.0.1:5432');
  });

  it('exposes the gate states on /metrics', async () => {
    metrics.gate({
      name: 'redis',
      state: 'failed',
      waitsFor: '',
      detail: null,
      lastError: 'x',
      attempts: 1,
      durationMs: 1,
    });
    const text = (await request(app).get('/metrics')).text;
    assert.match(text, /orchestrator_gate_state\{gate="redis",state="failed",service="orchestrator"\} 1/);
    assert.match(text, /orchestrator_gate_state\{gate="redis",state="passed",service="orchestrator"\} 0/);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await request(app).get('/v1/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'unknown_route');
  });
});

describe('/ping on PORT_HEALTH', () => {
  it('answers 204 while starting, 200 when ready, 503 while draining', async () => {
    let phase: Phase = 'starting';
    const app = createPingApp(
      () => phase,
      () => true,
    );
    assert.equal((await request(app).get('/ping')).status, 204);
    phase = 'ready';
    assert.equal((await request(app).get('/ping')).status, 200);
    phase = 'stopping';
    assert.equal((await request(app).get('/ping')).status, 503);
  });

  it('answers 204 while a supervised process restarts after the stack was ready', async () => {
    let allReady = false;
    const app = createPingApp(
      () => 'ready',
      () => allReady,
    );
    assert.equal((await request(app).get('/ping')).status, 204);
    allReady = true;
    assert.equal((await request(app).get('/ping')).status, 200);
  });
});

describe('DATA_DIR', () => {
  it('prefers the configured directory, then /runpod-volume, then /workspace, else /data', () => {
    const only = (dirs: string[]) => (path: string) => dirs.includes(path);
    assert.equal(resolveDataDir('/mine', only(['/runpod-volume'])), '/mine');
    assert.equal(resolveDataDir(undefined, only(['/runpod-volume', '/workspace'])), '/runpod-volume');
    assert.equal(resolveDataDir(undefined, only(['/workspace'])), '/workspace');
    assert.equal(resolveDataDir(undefined, only([])), '/data');
  });
});
