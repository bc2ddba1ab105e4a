// The proxy when the client or the backend misbehaves: a client that leaves before any backend is
// called, a client that reads slowly, a backend that is down, and backend errors no other backend
// may take.
import assert from 'node:assert/strict';
import http from 'node:http';
import { freePort, waitFor } from '@gguf-gateway/testkit';
import type { AuthStub } from '../support/auth-stub.js';
import type { FakeOpenAI } from '../support/fake-openai.js';
import { FLOOD_EVENTS } from '../support/fake-openai.js';
import { startFakeBackendStack, type FakeBackendStack } from '../support/fake-backend-stack.js';
import type { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const IDLE_MS = 200;

function backendsYaml(fakeUrl: string, deadUrl: string): string {
  const names = ['fake', 'flood', 'fail-429', 'fail-500', 'fail-html'];
  return [
    'models:',
    ...names.map((n) => `  ${n}: { tiers: [[fake]] }`),
    '  down: { tiers: [[dead]] }',
    'backends:',
    `  fake: { kind: llamacpp, url: "${fakeUrl}" }`,
    `  dead: { kind: llamacpp, url: "${deadUrl}" }`,
  ].join('\n');
}

describe('proxy failures caused by the client or the backend', function () {
  let fake: FakeOpenAI;
  let auth: AuthStub;
  let gateway: GatewayHarness;
  let stack: FakeBackendStack;

  before(async () => {
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    ({ fake, auth, gateway } = stack = await startFakeBackendStack({
      user: USER,
      backendsYaml: (fakeUrl) => backendsYaml(fakeUrl, deadUrl),
      timeouts: { firstByteMs: 2000, idleMs: IDLE_MS },
      breaker: { failureThreshold: 1000 },
    }));
  });

  after(() => stack.stop());

  afterEach(() => {
    auth.authorizeDelayMs = 0;
  });

  const chat = (model: string, extra: object = {}, requestId?: string, signal?: AbortSignal) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${USER}`,
        'content-type': 'application/json',
        ...(requestId ? { 'x-request-id': requestId } : {}),
      },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }),
      signal,
    });

  it('records 499 client_aborted and calls no backend when the client leaves while authorizing', async () => {
    auth.authorizeDelayMs = 300;
    const sent = fake.requests.length;
    const controller = new AbortController();
    const answer = chat('fake', { stream: true }, 'req-gone-early', controller.signal);
    await waitFor('authorize in flight', async () => auth.authorizations.length > 0 || null);
    controller.abort();
    await assert.rejects(answer);
    const event = await gateway.usageEvent('req-gone-early');
    assert.equal(event.status, 499);
    assert.equal(event.errorCode, 'client_aborted');
    assert.equal(event.backend, '');
    assert.equal(event.promptTokens, 0);
    assert.equal(fake.requests.length, sent, 'no backend call');
    assert.equal(await gateway.metric('gateway_backend_errors_total', { backend: 'fake' }), 0);
    await waitFor('settle', async () => auth.leasesOpen === 0 || null);
  });

  it('streams to a client that reads slower than the idle timeout without cutting it', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        // Reads nothing for several idle timeouts: the gateway's buffers fill and it must wait.
        res.pause();
        setTimeout(() => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.resume();
        }, IDLE_MS * 5);
      });
      req.end(JSON.stringify({ model: 'flood', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    });
    assert.equal(status, 200);
    assert.ok(!body.includes('backend_timeout'), 'no idle-timeout error event');
    assert.equal(body.match(/"content":"x+"/g)?.length, FLOOD_EVENTS);
    assert.ok(body.endsWith('data: [DONE]\n\n'));
    assert.equal(await gateway.metric('gateway_backend_errors_total', { backend: 'fake' }), 0);
  });

  it('charges no tokens for a request no backend took on', async () => {
    const settled = auth.settles.length;
    const res = await chat('down', { messages: [{ role: 'user', content: 'a long prompt '.repeat(100) }] }, 'req-down');
    assert.equal(res.status, 503);
    const event = await gateway.usageEvent('req-down');
    assert.equal(event.promptTokens, 0);
    assert.equal(event.completionTokens, 0);
    await waitFor('settle', async () => auth.settles.length > settled || null);
    assert.equal(auth.settles.at(-1)!.promptTokens, 0);
  });

  it("forwards a provider's Retry-After with its 429 when no other backend may take the request", async () => {
    const res = await chat('fail-429');
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    const body = (await res.json()) as { error: { message: string } };
    assert.equal(body.error.message, 'Rate limit exceeded');
  });

  it('still relays a 5xx whose body is an OpenAI error', async () => {
    const res = await chat('fail-500');
    assert.equal(res.status, 500);
    const body = (await res.json()) as { error: { message: string } };
    assert.equal(body.error.message, 'model crashed');
  });

  it("answers the gateway's own 502 in the OpenAI shape for a backend's HTML error page", async () => {
    const res = await chat('fail-html');
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, 'backend_error');
    assert.ok(!String(body.error.message).includes('nginx'));
  });
});
