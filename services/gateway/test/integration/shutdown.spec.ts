// SIGTERM on the gateway process: the last requests' settles (the only place their tokens are
// charged) reach auth before the gateway closes its auth connections.
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
import { FAKE_PROMPT_TOKENS, FakeOpenAI } from '../support/fake-openai.js';

const USER = 'sk-user-0123456789';
const GATEWAY_MAIN = join(repoRoot, 'services/gateway/dist/main.js');

describe('gateway shutdown', function () {
  let dir: string;
  let fake: FakeOpenAI;
  let auth: AuthStub;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-shutdown-'));
    fake = await FakeOpenAI.start();
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    writeFileSync(
      join(dir, 'backends.yaml'),
      `models:\n  m: { tiers: [[one]] }\nbackends:\n  one: { kind: llamacpp, url: "${fake.url}" }\n`,
    );
  });

  after(async () => {
    await auth.stop();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the settle of the last request before closing its auth connections on SIGTERM', async () => {
    auth.settleDelayMs = 500;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const gateway = startProcess(process.execPath, [GATEWAY_MAIN], {
      env: {
        ...process.env,
        PORT: String(port),
        PORT_HEALTH: String(await freePort()),
        REDIS_URL: testSettings.TEST_REDIS_URL,
        AUTH_URL: auth.url,
        AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
        BACKENDS_FILE: join(dir, 'backends.yaml'),
        LOG_LEVEL: 'info',
      },
    });
    try {
      await waitFor(
        'gateway up',
        async () => (await fetch(`${base}/healthz`).catch(() => null))?.status === 200,
        15_000,
        50,
      );
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
      });
      assert.equal(res.status, 200);
      await res.text();
      gateway.child.kill('SIGTERM');
      assert.equal(await gateway.exited, 0, gateway.output());
      assert.equal(auth.leasesOpen, 0, 'the lease was settled');
      assert.deepEqual(
        auth.settles.map((s) => [s.promptTokens, s.completionTokens]),
        [[FAKE_PROMPT_TOKENS, 2]],
      );
    } finally {
      await stopProcess(gateway);
    }
  });
});
