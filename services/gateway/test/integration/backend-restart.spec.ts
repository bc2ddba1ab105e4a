// Recovery is as fast as the backend: llama-server SIGKILLed under 10 concurrent clients and
// started again. Requests that arrive meanwhile wait for it (ROUTING_WAIT_MS) instead of failing,
// and flow again within 2 s of llama-server answering /health (the cooled backend is probed at once).
import assert from 'node:assert/strict';
import { LlamaServer, waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-restart-0123456789';
const BACKEND_KEY = 'llama-backend-key-0123456789';
const CLIENTS = 10;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('one llama-server killed and restarted under load', function () {
  this.timeout(90_000);
  let llama: LlamaServer;
  let auth: AuthStub;
  let gateway: GatewayHarness;

  before(async () => {
    llama = await LlamaServer.start({ slots: 2, apiKey: BACKEND_KEY });
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    // The production defaults: BACKEND_POLL_MS 1000, ROUTING_COOLDOWN_MS 500, ROUTING_WAIT_MS 15000.
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: `models: {tiny: {tiers: [[llama]]}}\nbackends: {llama: {kind: llamacpp, url: "${llama.url}"}}`,
      inferenceApiKey: BACKEND_KEY,
      breaker: { failureThreshold: 3, cooldownMs: 500 },
      backendPollMs: 1000,
      waitForBackendMs: 15_000,
    });
  });

  after(async () => {
    await gateway?.stop();
    await auth?.stop();
    await llama?.stop();
  });

  it('answers every request, and requests flow again within 2 s of /health answering', async () => {
    let running = true;
    const answers: { status: number; at: number }[] = [];
    const client = async () => {
      while (running) {
        const res = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'tiny', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
        });
        await res.arrayBuffer();
        answers.push({ status: res.status, at: performance.now() });
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);
    await sleep(1000);
    await llama.kill();
    const killedAt = performance.now();
    await sleep(1500);
    const restarting = llama.start();
    const healthyAt = await waitFor(
      'llama-server /health 200',
      async () => ((await fetch(`${llama.url}/health`).catch(() => null))?.status === 200 ? performance.now() : null),
      60_000,
      20,
    );
    await restarting;
    await sleep(3000);
    running = false;
    await Promise.all(clients);

    const failed = answers.filter((a) => a.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${answers.length} requests failed: ${JSON.stringify(failed)}`);
    const firstAfter = answers.find((a) => a.at > healthyAt);
    assert.ok(firstAfter, 'requests were answered after the restart');
    const flowMs = firstAfter.at - healthyAt;
    assert.ok(flowMs < 2000, `the first answer came ${flowMs.toFixed(0)} ms after /health answered`);
    assert.ok(answers.filter((a) => a.at > killedAt).length > CLIENTS, 'the clients kept going through the restart');
  });
});
