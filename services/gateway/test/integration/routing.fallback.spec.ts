// Fallback across tiers in front of local OpenAI-compatible servers playing remote providers: one
// that is over its rate limit (429), one that crashes (500), one that refuses the gateway's key
// (401), and one that drops a stream half way.
import assert from 'node:assert/strict';
import { waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const PROVIDER_KEY = 'provider-key-0123456789';
const WRONG_KEY = 'wrong-provider-key-0123456789';

function backendsYaml(providerUrl: string): string {
  const provider = (model?: string, keyEnv = 'PROVIDER_KEY') =>
    `{ kind: openai, url: "${providerUrl}", apiKeyEnv: ${keyEnv}${model ? `, model: ${model}` : ''} }`;
  return `
models:
  rate-limited: { tiers: [[p429], [good]] }
  crashing: { tiers: [[p500], [good]] }
  refused: { tiers: [[bad-key], [good]] }
  refused-only: { tiers: [[bad-key-2]] }
  midway: { tiers: [[dies], [good]] }
  budget: { tiers: [[f1, f2, f3], [good]] }
backends:
  good: ${provider()}
  p429: ${provider('fail-429')}
  p500: ${provider('fail-500')}
  bad-key: ${provider(undefined, 'WRONG_KEY')}
  bad-key-2: ${provider(undefined, 'WRONG_KEY')}
  dies: ${provider('die-midway')}
  f1: ${provider('fail-500')}
  f2: ${provider('fail-500')}
  f3: ${provider('fail-500')}
`;
}

describe('fallback across tiers of remote providers', function () {
  let provider: FakeOpenAI;
  let auth: AuthStub;
  let gateway: GatewayHarness;

  before(async () => {
    provider = await FakeOpenAI.start({ apiKey: PROVIDER_KEY });
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: backendsYaml(provider.url),
      backendKeys: { PROVIDER_KEY, WRONG_KEY },
      breaker: { failureThreshold: 3, cooldownMs: 60_000 },
      maxAttempts: 2,
      // The key probes that confirm a refused key run in the background poll.
      backendPollMs: 50,
    });
  });

  after(async () => {
    await gateway.stop();
    await auth.stop();
    await provider.stop();
  });

  function chat(model: string, body: Record<string, unknown> = {}): Promise<Response> {
    return fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...body }),
    });
  }

  const sent = (backend: string) => gateway.metric('gateway_backend_requests_total', { backend });

  for (const [model, backend, status] of [
    ['rate-limited', 'p429', '429'],
    ['crashing', 'p500', '500'],
  ] as const) {
    it(`falls back to the next tier when the primary provider answers ${status}`, async () => {
      const res = await chat(model);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      assert.equal(body.choices[0]!.message.content, 'toktoktok');
      assert.equal(res.headers.get('x-gateway-backend'), 'good');
      assert.equal(res.headers.get('x-gateway-attempts'), '2');
      assert.equal(res.headers.get('x-gateway-fallback'), '1');
      assert.equal(await sent(backend), 1);
      assert.equal(await gateway.metric('gateway_backend_errors_total', { backend }), 1);
      assert.equal(await gateway.metric('gateway_backend_fallbacks_total', { model }), 1);
    });
  }

  it('also falls back for a stream, since nothing reached the client before the 429', async () => {
    const res = await chat('rate-limited', { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-gateway-backend'), 'good');
    const text = await res.text();
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    assert.equal(text.match(/"content":"tok"/g)?.length, 3, 'one answer, not two');
  });

  it('keeps a provider that answers 500 in rotation: the answer is about the prompt, not the provider', async () => {
    await chat('crashing');
    await chat('crashing');
    assert.equal(await sent('p500'), 3);
    assert.equal(await gateway.metric('gateway_backend_state', { backend: 'p500', state: 'healthy' }), 1);
    const res = await chat('crashing');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-gateway-attempts'), '2', 'the primary is still asked first');
    assert.equal(await sent('p500'), 4);
  });

  it("cools a provider down once a probe confirms it refuses the gateway's key, and answers from the next tier", async () => {
    const first = await chat('refused');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-gateway-attempts'), '2');
    await waitFor('the key probe', async () =>
      (await gateway.metric('gateway_backend_state', { backend: 'bad-key', state: 'cooling_down' })) === 1
        ? true
        : null,
    );
    const second = await chat('refused');
    assert.equal(second.headers.get('x-gateway-attempts'), '1');
    assert.equal(await sent('bad-key'), 1, 'tried once, not again');
  });

  it('answers a clear 502 naming the refused key variable (never the key), then stops calling that provider', async () => {
    const res = await chat('refused-only');
    assert.equal(res.status, 502);
    const text = await res.text();
    const { error } = JSON.parse(text) as { error: { code: string; message: string; type: string } };
    assert.equal(error.code, 'backend_auth_failed');
    assert.match(error.message, /refused the gateway's API key; check WRONG_KEY/);
    assert.ok(!text.includes(WRONG_KEY) && !text.includes(PROVIDER_KEY));

    await waitFor('the key probe', async () =>
      (await gateway.metric('gateway_backend_state', { backend: 'bad-key-2', state: 'cooling_down' })) === 1
        ? true
        : null,
    );
    const again = await chat('refused-only');
    assert.equal(again.status, 503);
    assert.ok(Number(again.headers.get('retry-after')) >= 1);
    const next = (await again.json()) as { error: { code: string; message: string } };
    assert.equal(next.error.code, 'backend_unavailable');
    assert.match(next.error.message, /bad-key-2: the backend refused the gateway's key/);
    assert.equal(await sent('bad-key-2'), 1, 'one attempt in all, not one per request');
    assert.ok(!gateway.logs.text().includes(WRONG_KEY), 'the key is not logged');
  });

  it('never retries a stream that already sent text: the client gets an SSE error event instead', async () => {
    const answeredByGood = await sent('good');
    const res = await chat('midway', { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-gateway-backend'), 'dies');
    const events = (await res.text()).split('\n\n').filter(Boolean);
    const text = events
      .slice(0, -1)
      .map((e) => (JSON.parse(e.slice(6)) as { choices: { delta: { content: string } }[] }).choices[0]!.delta.content)
      .join('');
    assert.equal(text, 'one two ', 'the text once, no second answer appended');
    const last = JSON.parse(events.at(-1)!.slice(6)) as { error: { code: string; type: string; message: string } };
    assert.equal(last.error.code, 'backend_error');
    assert.equal(last.error.type, 'server_error');
    assert.equal(await sent('good'), answeredByGood, 'the next tier never saw this request');
  });

  it('stops at the retry budget', async () => {
    const res = await chat('budget');
    assert.equal(res.headers.get('x-gateway-attempts'), '2');
    assert.equal(res.status, 500, 'the last backend answer is relayed');
    const tried = (await sent('f1')) + (await sent('f2')) + (await sent('f3'));
    assert.equal(tried, 2);
  });

  it('lists each model and alias with its state', async () => {
    const res = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${USER}` } });
    const { data } = (await res.json()) as { data: { id: string; status: string }[] };
    const status = Object.fromEntries(data.map((m) => [m.id, m.status]));
    assert.equal(status['refused-only'], 'unavailable');
    assert.equal(status.refused, 'degraded');
    assert.equal(status['rate-limited'], 'available');
  });
});
