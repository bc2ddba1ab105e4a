// The route table's shapes in front of a fake backend and the auth stub: Anthropic errors, the key
// as x-api-key, routes a backend kind does not serve, the probes on the API port, and the model the
// client asked for in every answer. The same routes against a real llama-server are in test/e2e.
import assert from 'node:assert/strict';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';

describe('the inference route table in front of a fake backend', function () {
  let fake: FakeOpenAI;
  let auth: AuthStub;
  let gateway: GatewayHarness;
  let ready = false;

  before(async () => {
    fake = await FakeOpenAI.start();
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: [
        'models:',
        '  local: { tiers: [[fake]] }',
        '  remote: { tiers: [[provider]] }',
        '  mixed: { tiers: [[provider], [fake]] }',
        '  die-midway: { tiers: [[plain]] }',
        'backends:',
        `  fake: { kind: llamacpp, url: "${fake.url}", model: "/models/tiny-llama.gguf" }`,
        `  provider: { kind: openai, url: "${fake.url}" }`,
        `  plain: { kind: llamacpp, url: "${fake.url}" }`,
      ].join('\n'),
      bodyLimitBytes: 64 * 1024,
      isReady: () => ready,
    });
  });

  after(async () => {
    await gateway?.stop();
    await auth?.stop();
    await fake?.stop();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${USER}` }) =>
    fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const message = { max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] };

  it('answers /ping 204 and /health 503 while initializing, 200 once ready, without a key or a backend call', async () => {
    const seen = fake.requests.length;
    assert.equal((await fetch(`${gateway.url}/ping`)).status, 204);
    const initializing = await fetch(`${gateway.url}/health`);
    assert.equal(initializing.status, 503);
    assert.deepEqual(await initializing.json(), { status: 'initializing', ready: false });
    ready = true;
    assert.equal((await fetch(`${gateway.url}/ping`)).status, 200);
    assert.equal((await fetch(`${gateway.url}/health`)).status, 200);
    assert.equal(fake.requests.length, seen);
    assert.equal(fake.healthRequests, 0);
  });

  it('answers the Anthropic routes in the Anthropic error shape: no key, unknown model, bad JSON, too large', async () => {
    const cases: [Response, number, string][] = [
      [await post('/v1/messages', { model: 'local', ...message }, {}), 401, 'authentication_error'],
      [await post('/v1/messages', { model: 'nope', ...message }), 404, 'not_found_error'],
      [await post('/v1/messages', '{not json'), 400, 'invalid_request_error'],
      [await post('/v1/messages', { model: 'local', messages: [], pad: 'x'.repeat(70_000) }), 413, 'request_too_large'],
      [await post('/v1/messages/count_tokens', { model: 'local' }), 400, 'invalid_request_error'],
    ];
    for (const [res, status, type] of cases) {
      assert.equal(res.status, status);
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, type);
      assert.ok(body.error.message.length > 0);
    }
    // The OpenAI routes keep the OpenAI shape.
    const openai = (await (await post('/v1/chat/completions', { model: 'nope', messages: [{}] })).json()) as {
      error: { code: string };
    };
    assert.equal(openai.error.code, 'model_not_found');
  });

  it('accepts the key as x-api-key and passes anthropic-version on to the backend', async () => {
    const res = await post(
      '/v1/messages',
      { model: 'local', ...message },
      { 'x-api-key': USER, 'anthropic-version': '2023-06-01' },
    );
    assert.equal(res.status, 200);
    const seen = fake.requests.at(-1)!;
    assert.equal(seen.path, '/v1/messages');
    assert.equal(seen.headers['anthropic-version'], '2023-06-01');
    assert.equal(seen.headers['x-api-key'], undefined, "the client's key never goes upstream");
  });

  it('names the model the client asked for, never the backend model path, in JSON and in every stream event', async () => {
    const whole = await post('/v1/chat/completions', { model: 'local', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(((await whole.json()) as { model: string }).model, 'local');
    assert.equal(fake.requests.at(-1)!.body.model, '/models/tiny-llama.gguf');
    const stream = await post('/v1/chat/completions', {
      model: 'local',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    const text = await stream.text();
    assert.ok(!text.includes('tiny-llama.gguf'));
    assert.equal(text.split('"model":"local"').length - 1, 4, 'three content chunks and the finish chunk');
  });

  it('never sends a route to a backend kind that does not serve it, and answers 404 naming model and route', async () => {
    const seen = fake.requests.length;
    const res = await post('/v1/rerank', { model: 'remote', query: 'q', documents: ['d'] });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'route_not_supported');
    assert.match(body.error.message, /'remote'.*\/v1\/rerank/);
    const anthropic = await post('/v1/messages', { model: 'remote', ...message });
    assert.equal(anthropic.status, 404);
    assert.equal(((await anthropic.json()) as { type: string }).type, 'error');
    assert.equal(fake.requests.length, seen);
    // A model with a backend that can serve it skips the one that cannot, even in its first tier.
    const mixed = await post('/tokenize', { model: 'mixed', content: 'x' });
    assert.equal(mixed.headers.get('x-gateway-backend'), 'fake');
    assert.equal(fake.requests.at(-1)!.path, '/tokenize');
  });

  it('ends a /v1/messages stream cut by the backend with an Anthropic `event: error`', async () => {
    const res = await post('/v1/messages', { model: 'die-midway', stream: true, ...message });
    const text = await res.text();
    assert.match(
      text,
      /event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"The model backend closed the connection\."\}\}\n\n$/,
    );
  });

  it('refuses store and previous_response_id on /v1/responses before calling a backend', async () => {
    const seen = fake.requests.length;
    const stored = await post('/v1/responses', { model: 'local', input: 'x', store: true });
    assert.equal(stored.status, 400);
    assert.equal(((await stored.json()) as { error: { param: string } }).error.param, 'store');
    const chained = await post('/v1/responses', { model: 'local', input: 'x', previous_response_id: 'resp_1' });
    assert.equal(chained.status, 400);
    assert.equal(fake.requests.length, seen);
  });

  it("serves llama-server's own routes without a model when the gateway serves one model", async () => {
    const single = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: `models:\n  only: { tiers: [[fake]] }\nbackends:\n  fake: { kind: llamacpp, url: "${fake.url}" }`,
    });
    try {
      const res = await fetch(`${single.url}/infill`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input_prefix: 'a', input_suffix: 'b' }),
      });
      assert.equal(res.status, 200);
      assert.equal(fake.requests.at(-1)!.body.model, 'only');
      assert.equal((await single.usageEvent(res.headers.get('x-request-id')!)).route, 'infill');
    } finally {
      await single.stop();
    }
    const several = await post('/tokenize', { content: 'x' });
    assert.equal(several.status, 400);
  });
});
