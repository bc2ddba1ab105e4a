// A client cannot take a backend offline for everyone: a prompt a provider refuses (403 moderation)
// or one that makes the backend answer 500 is relayed and never cools the backend; only the
// transport and probes do, and a 401/403 cools it only once a probe with the gateway's key is
// refused too.
import assert from 'node:assert/strict';
import { waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-refusals-0123456789';
const BACKEND_KEY = 'backend-key-refusals-0123456789';

describe('backend refusals and the circuit breaker', function () {
  let fake: FakeOpenAI;
  let auth: AuthStub;

  before(async () => {
    fake = await FakeOpenAI.start({ apiKey: BACKEND_KEY });
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
  });

  after(async () => {
    await auth.stop();
    await fake.stop();
  });

  async function start(gatewayKey: string): Promise<GatewayHarness> {
    return GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: [
        'models:',
        ...['fine', 'moderated', 'fail-500', 'fail-429'].map((m) => `  ${m}: { tiers: [[fake]] }`),
        `backends: { fake: { kind: openai, url: "${fake.url}", apiKeyEnv: FAKE_KEY } }`,
      ].join('\n'),
      backendKeys: { FAKE_KEY: gatewayKey },
      // One failure would be enough to cool it, were answers counted as failures.
      breaker: { failureThreshold: 1, cooldownMs: 60_000 },
      backendPollMs: 50,
    });
  }

  async function chat(gateway: GatewayHarness, model: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
    });
    return { status: res.status, body: await res.text() };
  }

  it("relays a provider's 403, 500 and 429 for a prompt and keeps the backend serving everyone", async () => {
    const gateway = await start(BACKEND_KEY);
    try {
      for (let i = 0; i < 5; i++) {
        const moderated = await chat(gateway, 'moderated');
        assert.equal(moderated.status, 403);
        assert.match(moderated.body, /flagged by moderation/);
        assert.equal((await chat(gateway, 'fail-500')).status, 500);
        assert.equal((await chat(gateway, 'fail-429')).status, 429);
      }
      // The 403s asked for a probe with the gateway's key: it was accepted.
      await waitFor('the key probes', async () => gateway.router.backends().every((b) => !b.keyProbeWanted) || null);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(
        gateway.router.backends().map((b) => b.health),
        ['healthy'],
      );
      assert.equal((await chat(gateway, 'fine')).status, 200);
    } finally {
      await gateway.stop();
    }
  });

  it("cools a backend down once a probe confirms it refuses the gateway's key", async () => {
    const gateway = await start('a-key-the-backend-does-not-know');
    try {
      const refused = await chat(gateway, 'fine');
      assert.equal(refused.status, 502);
      assert.match(refused.body, /backend_auth_failed/);
      const state = await waitFor('the backend cooled by the key probe', async () =>
        gateway.router.backends().find((b) => b.health === 'cooling_down'),
      );
      assert.equal(state.lastProblem, "the backend refused the gateway's key");
    } finally {
      await gateway.stop();
    }
  });
});
