// What the gateway tells clients about broken dependencies: names and states, never an internal
// address or a raw error text (those stay in the logs).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  repoRoot,
  startProcess,
  stopProcess,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  waitFor,
} from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const GATEWAY_MAIN = join(repoRoot, 'services/gateway/dist/main.js');

describe('dependency problems as clients see them', function () {
  let dir: string;
  let auth: AuthStub;
  let deadPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-readiness-'));
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    deadPort = await freePort();
  });

  after(async () => {
    await auth.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('names the cooled-down backend in the 503, without its address or error text', async () => {
    const gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: `models:\n  m: { tiers: [[sidecar]] }\nbackends:\n  sidecar: { kind: llamacpp, url: "http://127.0.0.1:${deadPort}" }\n`,
      backendPollMs: 50,
      breaker: { failureThreshold: 1 },
    });
    try {
      await waitFor(
        'cooled down',
        async () =>
          (await gateway.metric('gateway_backend_state', { backend: 'sidecar', state: 'cooling_down' })) === 1 || null,
      );
      const res = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(res.status, 503);
      const { error } = (await res.json()) as { error: { message: string; code: string } };
      assert.equal(error.code, 'backend_unavailable');
      assert.match(error.message, /sidecar: not answering its health checks/);
      assert.ok(!error.message.includes(String(deadPort)) && !error.message.includes('127.0.0.1'), error.message);
      assert.ok(!/ECONNREFUSED|fetch failed/.test(error.message), error.message);
    } finally {
      await gateway.stop();
    }
  });

  it('answers /readyz on the health port naming the auth service and the backends, never their addresses, and only the status on the API port', async () => {
    const authPort = await freePort();
    writeFileSync(
      join(dir, 'backends.yaml'),
      `models:\n  m: { tiers: [[sidecar]] }\nbackends:\n  sidecar: { kind: llamacpp, url: "http://127.0.0.1:${deadPort}" }\n`,
    );
    const port = await freePort();
    const healthPort = await freePort();
    const gateway = startProcess(process.execPath, [GATEWAY_MAIN], {
      env: {
        ...process.env,
        PORT: String(port),
        PORT_HEALTH: String(healthPort),
        REDIS_URL: testSettings.TEST_REDIS_URL,
        AUTH_URL: `http://127.0.0.1:${authPort}`,
        AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
        BACKENDS_FILE: join(dir, 'backends.yaml'),
        READINESS_POLL_MS: '100',
        LOG_LEVEL: 'info',
      },
    });
    try {
      // The first poll's findings, with their addresses, reach the log; then /readyz is asked.
      await waitFor(
        'the detail in the logs',
        async () => gateway.output().includes(String(deadPort)) || null,
        15_000,
        50,
      );
      const api = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(api.status, 503);
      assert.deepEqual(await api.json(), { status: 'not_ready' });
      const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
      const readyz = { ...((await res.json()) as { checks: Record<string, string> }), httpStatus: res.status };
      assert.equal(readyz.httpStatus, 503);
      assert.match(readyz.checks.backends!, /sidecar/);
      assert.match(readyz.checks.auth!, /auth/);
      const text = JSON.stringify(readyz);
      for (const leak of [String(deadPort), String(authPort), '127.0.0.1', 'ECONNREFUSED']) {
        assert.ok(!text.includes(leak), `/readyz shows ${leak}: ${text}`);
      }
    } finally {
      await stopProcess(gateway);
    }
  });
});
