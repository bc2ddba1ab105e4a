// A backend closes idle keep-alive connections on its own timer (llama-server after about 5 s). A
// request sent on such a socket as it closes must not fail: the gateway drops idle sockets sooner
// (UPSTREAM_KEEPALIVE_IDLE_MS), and a reused socket reset before any byte of the answer is tried
// once more on a new connection.
import assert from 'node:assert/strict';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI, type FakeOpenAIOptions } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-keepalive-0123456789';

async function withGateway(
  fakeOptions: FakeOpenAIOptions,
  keepAliveIdleMs: number,
  run: (chat: () => Promise<number>, fake: FakeOpenAI) => Promise<void>,
): Promise<void> {
  const fake = await FakeOpenAI.start(fakeOptions);
  const auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
  const gateway = await GatewayHarness.start({
    authUrl: auth.url,
    backendsYaml: `models: {m: {tiers: [[fake]]}}\nbackends: {fake: {kind: llamacpp, url: "${fake.url}"}}`,
    timeouts: { keepAliveIdleMs },
  });
  const chat = async () => {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
    });
    await res.text();
    return res.status;
  };
  try {
    await run(chat, fake);
  } finally {
    await gateway.stop();
    await auth.stop();
    await fake.stop();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('keep-alive connections to a backend', function () {
  it('closes an idle connection before the backend does, so the next request goes out on a new one', async () => {
    // The backend resets connections idle for 300 ms; the gateway drops its idle ones after 100 ms.
    await withGateway({ resetReusedAfterIdleMs: 300 }, 100, async (chat, fake) => {
      for (let i = 0; i < 3; i++) {
        assert.equal(await chat(), 200);
        await sleep(400);
      }
      assert.equal(fake.resets, 0, 'no request went out on a connection the backend was closing');
      assert.equal(fake.connections, 3);
    });
  });

  it('retries once on a new connection when a reused one is reset before any byte of the answer', async () => {
    // The race itself, every time: each reused connection is reset as the request arrives.
    await withGateway({ resetReusedAfterIdleMs: 0 }, 60_000, async (chat, fake) => {
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push(await chat());
      assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
      assert.ok(fake.resets >= 4, `the backend reset ${fake.resets} reused connections`);
    });
  });
});
