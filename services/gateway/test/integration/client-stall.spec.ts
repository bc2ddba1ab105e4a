// A client that stops reading its answer is cut after CLIENT_STALL_MS: the stream ends, the backend
// request is aborted, and llama.cpp frees the slot it held.
import assert from 'node:assert/strict';
import net from 'node:net';
import { LlamaServer, waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import type { FakeOpenAI } from '../support/fake-openai.js';
import { startFakeBackendStack, type FakeBackendStack } from '../support/fake-backend-stack.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-stall-0123456789';
const BACKEND_KEY = 'llama-backend-key-0123456789';
const STALL_MS = 500;

/** Sends a streamed chat request and then never reads a byte of the answer. */
function stalledClient(gatewayUrl: string, body: Record<string, unknown>, requestId: string): net.Socket {
  const { port } = new URL(gatewayUrl);
  const payload = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true, ...body });
  const socket = net.connect(Number(port), '127.0.0.1', () => {
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${USER}\r\n` +
        `content-type: application/json\r\nx-request-id: ${requestId}\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
    );
    socket.pause();
  });
  socket.on('error', () => undefined);
  return socket;
}

describe('a client that stops reading', function () {
  this.timeout(60_000);

  describe('in front of a backend that writes as fast as it is read', () => {
    let fake: FakeOpenAI;
    let auth: AuthStub;
    let gateway: GatewayHarness;
    let stack: FakeBackendStack;

    before(async () => {
      ({ fake, auth, gateway } = stack = await startFakeBackendStack({
        user: USER,
        fakeModels: ['flood-endless'],
        timeouts: { clientStallMs: STALL_MS },
      }));
    });

    after(() => stack.stop());

    it('is cut after CLIENT_STALL_MS, the backend request aborted and the request recorded as client_stalled', async () => {
      const socket = stalledClient(gateway.url, { model: 'flood-endless' }, 'stalled-flood');
      const started = performance.now();
      await waitFor('the backend stream aborted', async () => fake.abortedStreams === 1 || null, 10_000, 20);
      const ms = performance.now() - started;
      // Reading again, the client finds its connection closed by the gateway.
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.resume();
      await closed;
      assert.ok(ms >= STALL_MS && ms < STALL_MS + 3000, `cut after ${ms.toFixed(0)} ms`);
      const event = await gateway.usageEvent('stalled-flood');
      assert.equal(event.status, 499);
      assert.equal(event.errorCode, 'client_stalled');
      assert.equal(auth.leasesOpen, 0, 'the lease was settled');
    });
  });

  describe('in front of llama-server', () => {
    let llama: LlamaServer;
    let auth: AuthStub;
    let gateway: GatewayHarness;

    before(async () => {
      // One slot, and with context shift a request without max_tokens generates until it is aborted.
      llama = await LlamaServer.start({ slots: 1, apiKey: BACKEND_KEY, extraArgs: ['--context-shift'] });
      auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
      gateway = await GatewayHarness.start({
        authUrl: auth.url,
        backendsYaml: `models: {tiny: {tiers: [[llama]]}}\nbackends: {llama: {kind: llamacpp, url: "${llama.url}"}}`,
        inferenceApiKey: BACKEND_KEY,
        timeouts: { clientStallMs: STALL_MS },
      });
    });

    after(async () => {
      await gateway?.stop();
      await auth?.stop();
      await llama?.stop();
    });

    async function slotBusy(): Promise<boolean> {
      const res = await fetch(`${llama.url}/slots`, { headers: { authorization: `Bearer ${BACKEND_KEY}` } });
      return ((await res.json()) as { is_processing: boolean }[]).some((s) => s.is_processing);
    }

    it('frees the llama.cpp slot of an endless generation once the socket buffers are full plus CLIENT_STALL_MS, and the next request is served', async () => {
      // n_probs makes every event several KB, so the socket buffers between the client and llama-server
      // fill within seconds; without the cut the slot would generate for ever.
      const socket = stalledClient(gateway.url, { model: 'tiny', ignore_eos: true, n_probs: 100 }, 'stalled-llama');
      await waitFor('the slot busy', async () => (await slotBusy()) || null, 10_000, 20);
      await waitFor('the slot free again', async () => !(await slotBusy()) || null, 30_000, 50);
      const event = await gateway.usageEvent('stalled-llama');
      assert.equal(event.status, 499);
      assert.equal(event.errorCode, 'client_stalled');
      socket.destroy();
      const next = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(next.status, 200);
    });
  });
});
