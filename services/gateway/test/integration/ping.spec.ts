import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, createMetricsRegistry, createPingApp, parseBackendsFile } from '@gguf-gateway/shared';
import { LogCapture, TEST_AUTH_INTERNAL_TOKEN } from '@gguf-gateway/testkit';
import { AuthClient } from '../../src/authorization/auth.client.js';
import { BackendMonitor } from '../../src/routing/backend.monitor.js';
import { ModelRouter } from '../../src/routing/model-router.js';
import { ReadinessMonitor } from '../../src/routing/readiness.monitor.js';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';

describe('/ping on the health port', () => {
  let fake: FakeOpenAI;
  let auth: AuthStub;
  let authClient: AuthClient;
  let monitor: ReadinessMonitor;
  let backends: BackendMonitor;
  let server: Server;
  let url: string;

  before(async () => {
    fake = await FakeOpenAI.start();
    fake.healthStatus = 503;
    auth = await AuthStub.start({ keys: [] });
    authClient = new AuthClient(new URL(auth.url), 1000, TEST_AUTH_INTERNAL_TOKEN);
    const router = new ModelRouter(
      parseBackendsFile(`models: {m: {tiers: [[b]]}}\nbackends: {b: {kind: llamacpp, url: "${fake.url}"}}`),
      () => undefined,
    );
    // Neither poll runs on a timer: only explicit polls reach the backend.
    const logger = createLogger({ service: 'gateway', destination: new LogCapture() });
    backends = new BackendMonitor(router, 1, 1000, logger);
    monitor = new ReadinessMonitor(() => authClient.problem(), backends, 600_000, logger);
    server = createServer(createPingApp(() => (monitor.ready ? 'ready' : 'initializing')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping`;
  });

  after(async () => {
    await monitor.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    authClient.close();
    await auth.stop();
    await fake.stop();
  });

  it('answers 204 while the backend loads, 200 once it is healthy, and never calls the backend per probe', async () => {
    const poll = () => Promise.all([backends.poll(), monitor.poll()]);
    monitor.start();
    await poll();
    assert.equal((await fetch(url)).status, 204);
    fake.healthStatus = 200;
    await poll();
    const checks = fake.healthRequests;
    for (let i = 0; i < 50; i += 1) assert.equal((await fetch(url)).status, 200);
    assert.equal(fake.healthRequests, checks, 'no backend request per probe');
    assert.equal(fake.requests.length, 0);
  });
});

describe('/ping reads the state routing uses', () => {
  let fake: FakeOpenAI;
  let server: Server;

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await fake.stop();
  });

  it("answers 204 while every backend is cooled down, though each one's /health answers 200", async () => {
    // The backend refuses the gateway's key: /health (no key needed) says 200, requests would fail.
    fake = await FakeOpenAI.start({ apiKey: 'the-key-the-backend-knows-0123' });
    const router = new ModelRouter(
      parseBackendsFile(`models: {m: {tiers: [[b]]}}\nbackends: {b: {kind: llamacpp, url: "${fake.url}"}}`),
      () => 'a-key-it-does-not-know-0123',
      { failureThreshold: 1, cooldownMs: 60_000 },
    );
    const logger = createLogger({ service: 'gateway', destination: new LogCapture() });
    const backends = new BackendMonitor(router, 1, 1000, logger);
    const readiness = new ReadinessMonitor(async () => null, backends, 600_000, logger);
    server = createServer(createPingApp(() => (readiness.ready ? 'ready' : 'initializing')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await Promise.all([backends.poll(), readiness.poll()]);

    assert.equal((await fetch(`${fake.url}/health`)).status, 200);
    assert.deepEqual(
      router.backends().map((b) => b.health),
      ['cooling_down'],
    );
    assert.equal((await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ping`)).status, 204);
    assert.match(readiness.problem('backends')!, /no backend answers its health check \(b\)/);
  });
});

describe('PORT_HEALTH serves the details the API port does not', () => {
  let server: Server;
  let base: string;

  before(async () => {
    const registry = createMetricsRegistry('gateway');
    server = createServer(
      createPingApp(() => 'initializing', {
        checks: { auth: () => null, backends: () => 'no backend answers its health check (sidecar)' },
        degradedBy: {},
        registry,
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('names the failing check on /readyz and serves /metrics without a key', async () => {
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), {
      status: 'not_ready',
      checks: { auth: 'ok', backends: 'no backend answers its health check (sidecar)' },
    });
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /process_cpu_user_seconds_total/);
    assert.equal((await fetch(`${base}/ping`)).status, 204);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);
  });
});
