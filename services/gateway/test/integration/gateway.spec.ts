import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { FAKE_PROMPT_TOKENS, FakeOpenAI, SPLIT_UTF8_TEXT } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const BACKEND_KEY = 'backend-own-key-0123456789';
const USER = 'sk-user-0123456789';
const ADMIN = 'sk-admin-0123456789';
const LIMITED = 'sk-limited-0123456789';
const RESTRICTED = 'sk-restricted-0123456789';

function backendsYaml(fakeUrl: string, deadUrl: string): string {
  const names = ['fake', 'fail-500', 'stall', 'slow', 'split-utf8', 'endless', 'org/model'];
  return [
    'models:',
    ...names.map((n) => `  "${n}": { tiers: [[fake]]${n === 'fake' ? ', aliases: [fake-alias]' : ''} }`),
    '  down: { tiers: [[dead]] }',
    'backends:',
    `  fake: { kind: llamacpp, url: "${fakeUrl}" }`,
    `  dead: { kind: llamacpp, url: "${deadUrl}" }`,
  ].join('\n');
}

interface SseResult {
  status: number;
  headers: Headers;
  events: string[];
  text: string;
}

async function readSse(res: Response): Promise<SseResult> {
  const raw = await res.text();
  const events = raw
    .split('\n\n')
    .filter(Boolean)
    .map((e) => e.replace(/^data: /, ''));
  const text = events
    .filter((e) => e !== '[DONE]')
    .map((e) => (JSON.parse(e) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '')
    .join('');
  return { status: res.status, headers: res.headers, events, text };
}

describe('gateway in front of a fake backend and the auth stub', function () {
  let fake: FakeOpenAI;
  let auth: AuthStub;
  let gateway: GatewayHarness;

  before(async () => {
    fake = await FakeOpenAI.start({ apiKey: BACKEND_KEY });
    auth = await AuthStub.start({
      keys: [
        { id: 'user', secret: USER },
        { id: 'admin', secret: ADMIN, scopes: ['admin'] },
        { id: 'limited', secret: LIMITED, rpm: 1 },
        { id: 'restricted', secret: RESTRICTED, models: ['other'] },
      ],
      leaseTtlSec: 3,
    });
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: backendsYaml(fake.url, `http://127.0.0.1:${await freePort()}`),
      inferenceApiKey: BACKEND_KEY,
      timeouts: { firstByteMs: 300, idleMs: 300 },
      // Every failure case here goes to the one fake backend: it must not be cooled down in between.
      breaker: { failureThreshold: 1000 },
      bodyLimitBytes: 64 * 1024,
      corsOrigins: ['https://app.example'],
    });
  });

  after(async () => {
    await gateway.stop();
    await auth.stop();
    await fake.stop();
  });

  const post = (path: string, body: unknown, key: string | null = USER, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const chat = (model: string, extra: object = {}, key: string | null = USER, headers: Record<string, string> = {}) =>
    post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], ...extra }, key, headers);

  async function assertOpenAIError(res: Response, status: number, code: string, param: string | null = null) {
    assert.equal(res.status, status);
    assert.ok(res.headers.get('x-request-id'), 'x-request-id on every answer');
    const body = (await res.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, code);
    assert.equal(body.error.param, param);
    return body.error;
  }

  describe('proxying and usage', () => {
    it('answers a chat completion and records one usage event with the backend usage', async () => {
      const res = await chat('fake', { max_tokens: 4 }, USER, { 'x-request-id': 'req-plain-1' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-request-id'), 'req-plain-1');
      const body = (await res.json()) as { usage: { completion_tokens: number } };
      assert.equal(body.usage.completion_tokens, 4);
      const event = await gateway.usageEvent('req-plain-1');
      assert.equal(event.keyId, 'user');
      assert.equal(event.model, 'fake');
      assert.equal(event.backend, 'fake');
      assert.equal(event.route, 'chat');
      assert.equal(event.status, 200);
      assert.equal(event.stream, false);
      assert.equal(event.promptTokens, FAKE_PROMPT_TOKENS);
      assert.equal(event.completionTokens, 4);
      assert.equal(event.usageSource, 'upstream');
      assert.equal(event.errorCode, null);
      await waitFor('settle', async () =>
        auth.settles.find((s) => s.completionTokens === 4 && s.promptTokens === FAKE_PROMPT_TOKENS),
      );
    });

    it("records one usage event per request even when clients reuse an x-request-id, keeping the client's id", async () => {
      const first = await chat('fake', { max_tokens: 1 }, USER, { 'x-request-id': 'req-reused' });
      const second = await chat('fake', { max_tokens: 1 }, USER, { 'x-request-id': 'req-reused' });
      assert.equal(first.headers.get('x-request-id'), 'req-reused', 'the client id is still echoed');
      assert.equal(second.headers.get('x-request-id'), 'req-reused');
      const events = await waitFor('both events', async () => {
        const reused = (await gateway.usageEvents()).filter((e) => e.clientRequestId === 'req-reused');
        return reused.length === 2 ? reused : null;
      });
      assert.notEqual(events[0]!.requestId, events[1]!.requestId);
      assert.ok(events.every((e) => e.requestId !== 'req-reused'));
      assert.ok(gateway.logs.text().includes(`"usageId":"${events[0]!.requestId}"`), 'the log links the two ids');

      const own = await chat('fake', { max_tokens: 1 });
      const generated = own.headers.get('x-request-id')!;
      const event = await waitFor('event', async () =>
        (await gateway.usageEvents()).find((e) => e.requestId === generated),
      );
      assert.equal(event.clientRequestId, undefined);
    });

    it('streams without a usage chunk when the client did not ask, and still meters the stream', async () => {
      const res = await chat('fake', { stream: true, max_tokens: 5 }, USER, { 'x-request-id': 'req-stream-1' });
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      assert.equal(res.headers.get('x-accel-buffering'), 'no');
      const sse = await readSse(res);
      assert.equal(sse.text, 'tok'.repeat(5));
      assert.ok(!sse.events.some((e) => e.includes('"usage"')), 'no usage chunk');
      assert.equal(sse.events.at(-1), '[DONE]');
      const upstream = fake.requests.at(-1)!;
      assert.deepEqual(upstream.body.stream_options, { include_usage: true });
      const event = await gateway.usageEvent('req-stream-1');
      assert.equal(event.stream, true);
      assert.equal(event.completionTokens, 5);
      assert.equal(event.usageSource, 'upstream');
      assert.equal(typeof event.ttftMs, 'number');
    });

    it('keeps the usage chunk when the client asked for it', async () => {
      const res = await chat('fake', { stream: true, max_tokens: 2, stream_options: { include_usage: true } });
      const sse = await readSse(res);
      const usage = sse.events.filter((e) => e.includes('"usage"'));
      assert.equal(usage.length, 1);
      assert.deepEqual((JSON.parse(usage[0]!) as { usage: object }).usage, {
        prompt_tokens: FAKE_PROMPT_TOKENS,
        completion_tokens: 2,
        total_tokens: FAKE_PROMPT_TOKENS + 2,
      });
    });

    it('passes a multi-byte character split across backend chunks through intact', async () => {
      const sse = await readSse(await chat('split-utf8', { stream: true }));
      assert.equal(sse.text, SPLIT_UTF8_TEXT);
    });

    it('resolves an alias to its model and sends the backend its own key, never the client key', async () => {
      const res = await chat('fake-alias', {}, USER, { 'x-request-id': 'req-alias-1' });
      assert.equal(res.status, 200);
      const upstream = fake.requests.at(-1)!;
      assert.equal(upstream.body.model, 'fake');
      assert.equal(upstream.headers.authorization, `Bearer ${BACKEND_KEY}`);
      assert.equal(upstream.headers['x-request-id'], 'req-alias-1');
      assert.ok(auth.requestIds.includes('req-alias-1'), 'request id forwarded to auth');
      assert.ok(!JSON.stringify(fake.requests).includes(USER), 'client key never reaches the backend');
      assert.equal((await gateway.usageEvent('req-alias-1')).model, 'fake');
    });

    it('proxies completions and embeddings', async () => {
      const completion = await post('/v1/completions', { model: 'fake', prompt: 'hi', max_tokens: 1 });
      assert.equal(completion.status, 200);
      assert.equal(fake.requests.at(-1)!.path, '/v1/completions');
      const embedding = await post('/v1/embeddings', { model: 'fake', input: 'hi' }, USER, {
        'x-request-id': 'req-emb-1',
      });
      assert.equal(embedding.status, 200);
      assert.equal(fake.requests.at(-1)!.path, '/v1/embeddings');
      const event = await gateway.usageEvent('req-emb-1');
      assert.equal(event.route, 'embeddings');
      assert.equal(event.promptTokens, FAKE_PROMPT_TOKENS);
      assert.equal(event.completionTokens, 0);
    });

    it('lists the configured models and aliases in the OpenAI list shape', async () => {
      const res = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${USER}` } });
      const body = (await res.json()) as { object: string; data: { id: string; object: string }[] };
      assert.equal(body.object, 'list');
      const ids = body.data.map((m) => m.id);
      assert.ok(ids.includes('fake') && ids.includes('fake-alias') && ids.includes('down'));
      assert.ok(body.data.every((m) => m.object === 'model'));
    });
  });

  describe('refusals in the OpenAI shape', () => {
    it('answers GET /v1/models/:id for a model name with a slash, sent unencoded as the SDKs do', async () => {
      const res = await fetch(`${gateway.url}/v1/models/org/model`, { headers: { authorization: `Bearer ${USER}` } });
      assert.equal(res.status, 200);
      const model = (await res.json()) as { id: string; object: string };
      assert.equal(model.id, 'org/model');
      assert.equal(model.object, 'model');
      const missing = await fetch(`${gateway.url}/v1/models/org/nothing`, {
        headers: { authorization: `Bearer ${USER}` },
      });
      await assertOpenAIError(missing, 404, 'model_not_found', 'model');
    });

    it('relays 401 from auth unchanged for a missing or unknown key', async () => {
      const missing = await assertOpenAIError(await chat('fake', {}, null), 401, 'invalid_api_key');
      assert.match(String(missing.message), /Missing API key/);
      const unknown = await assertOpenAIError(await chat('fake', {}, 'sk-nope'), 401, 'invalid_api_key');
      assert.match(String(unknown.message), /Incorrect API key/);
    });

    it('refuses an Authorization header longer than any key with 401 invalid_api_key, without asking auth', async () => {
      const asked = auth.authorizations.length;
      const res = await chat('fake', {}, 'k'.repeat(2000));
      const error = await assertOpenAIError(res, 401, 'invalid_api_key');
      assert.equal(error.type, 'authentication_error');
      assert.equal(auth.authorizations.length, asked, 'auth was not called');
    });

    it("returns 429 with Retry-After and x-ratelimit headers when the key's rpm is spent", async () => {
      const first = await chat('fake', {}, LIMITED);
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('x-ratelimit-limit-requests'), '1');
      assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '0');
      const second = await chat('fake', {}, LIMITED);
      assert.match(second.headers.get('retry-after') ?? '', /^\d+$/);
      assert.match(second.headers.get('x-ratelimit-reset-requests') ?? '', /^\d+s$/);
      await assertOpenAIError(second, 429, 'rate_limit_exceeded');
    });

    it('relays 403 model_not_allowed for a key restricted to other models', async () => {
      await assertOpenAIError(await chat('fake', {}, RESTRICTED), 403, 'model_not_allowed');
    });

    it('answers an oversize body with 413 and broken JSON with 400', async () => {
      const big = JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] });
      await assertOpenAIError(await post('/v1/chat/completions', big), 413, 'request_too_large');
      await assertOpenAIError(await post('/v1/chat/completions', '{"model": "fake",'), 400, 'invalid_json');
    });

    it('names the bad field in param', async () => {
      await assertOpenAIError(
        await post('/v1/chat/completions', { model: 'fake' }),
        400,
        'missing_required_parameter',
        'messages',
      );
      await assertOpenAIError(
        await post('/v1/chat/completions', { messages: [] }),
        400,
        'missing_required_parameter',
        'model',
      );
      await assertOpenAIError(await chat('fake', { stream: 'yes' }), 400, 'invalid_type', 'stream');
      await assertOpenAIError(await post('/v1/embeddings', { model: 'fake', input: 3 }), 400, 'invalid_type', 'input');
    });

    it('answers an unknown model with 404 model_not_found and settles its lease', async () => {
      const settled = auth.settles.length;
      await assertOpenAIError(await chat('no-such-model'), 404, 'model_not_found', 'model');
      await waitFor('settle', async () => auth.settles.length > settled);
    });

    it('answers 503 with Retry-After when the backend is down, and counts the upstream error', async () => {
      const res = await chat('down', {}, USER, { 'x-request-id': 'req-down-1' });
      assert.equal(res.headers.get('retry-after'), '2');
      await assertOpenAIError(res, 503, 'backend_unavailable');
      assert.equal(await gateway.metric('gateway_upstream_errors_total', { backend: 'dead', reason: 'connect' }), 1);
      const event = await gateway.usageEvent('req-down-1');
      assert.equal(event.status, 503);
      assert.equal(event.errorCode, 'backend_unavailable');
    });

    it('relays a backend 5xx and counts it', async () => {
      const res = await chat('fail-500');
      assert.equal(res.status, 500);
      assert.equal(await gateway.metric('gateway_upstream_errors_total', { backend: 'fake', reason: 'status_5xx' }), 1);
    });

    it('answers 504 when the backend sends no first byte in time', async () => {
      await assertOpenAIError(await chat('slow'), 504, 'backend_timeout');
    });

    it('ends a stream whose backend goes silent with an SSE error event, and records why', async () => {
      const res = await chat('stall', { stream: true }, USER, { 'x-request-id': 'req-stall-1' });
      assert.equal(res.status, 200);
      const events = (await res.text()).split('\n\n').filter(Boolean);
      assert.equal(events.length, 2, 'the one chunk, then the error');
      const last = JSON.parse(events[1]!.replace(/^data: /, '')) as { error: { code: string; type: string } };
      assert.equal(last.error.code, 'backend_timeout');
      assert.equal(last.error.type, 'server_error');
      const event = await gateway.usageEvent('req-stall-1');
      assert.equal(event.errorCode, 'backend_timeout');
      assert.equal(event.usageSource, 'estimated');
      assert.equal(event.completionTokens, 1);
    });

    it('answers 503 when the auth service is unreachable, without naming its address', async () => {
      const port = await freePort();
      const isolated = await GatewayHarness.start({
        authUrl: `http://127.0.0.1:${port}`,
        backendsYaml: backendsYaml(fake.url, fake.url),
      });
      try {
        const res = await fetch(`${isolated.url}/v1/models`, { headers: { authorization: `Bearer ${USER}` } });
        const error = await assertOpenAIError(res, 503, 'auth_unavailable');
        assert.ok(!String(error.message).includes(String(port)));
      } finally {
        await isolated.stop();
      }
    });
  });

  describe('aborts, leases and lost events', () => {
    it('aborts the backend request when the client goes away, settles once and records the abort', async () => {
      const aborted = fake.abortedStreams;
      const res = await chat('endless', { stream: true }, USER, { 'x-request-id': 'req-abort-1' });
      const reader = res.body!.getReader();
      await reader.read();
      await reader.read();
      await reader.cancel();
      await waitFor('backend sees the abort', async () => fake.abortedStreams > aborted);
      const event = await gateway.usageEvent('req-abort-1');
      assert.equal(event.status, 499);
      assert.equal(event.errorCode, 'client_aborted');
      assert.ok(event.completionTokens >= 1);
      assert.equal(auth.leasesOpen, 0, 'every lease settled');
    });

    it("renews a long stream's lease every third of its TTL", async () => {
      const renewed = auth.renews.length;
      const res = await chat('endless', { stream: true });
      const reader = res.body!.getReader();
      await waitFor('a renew', async () => auth.renews.length > renewed, 3000);
      await reader.cancel();
    });

    it('still answers when Redis is unreachable, and spools the usage event instead of losing it', async () => {
      const spoolDir = mkdtempSync(join(tmpdir(), 'gg-spool-'));
      const isolated = await GatewayHarness.start({
        authUrl: auth.url,
        backendsYaml: backendsYaml(fake.url, fake.url),
        inferenceApiKey: BACKEND_KEY,
        redisUrl: `redis://127.0.0.1:${await freePort()}`,
        spoolDir,
      });
      try {
        const res = await fetch(`${isolated.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json', 'x-request-id': 'spooled-1' },
          body: JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'hi' }] }),
        });
        assert.equal(res.status, 200);
        const spooled = await waitFor('the spooled event', async () => {
          const files = readdirSync(spoolDir);
          return files.length > 0 ? readFileSync(join(spoolDir, files[0]!), 'utf8') : null;
        });
        assert.equal((JSON.parse(spooled.trim()) as { clientRequestId: string }).clientRequestId, 'spooled-1');
        assert.equal(await isolated.metric('gateway_usage_events_dropped_total'), 0);
      } finally {
        await isolated.stop();
        rmSync(spoolDir, { recursive: true, force: true });
      }
    });

    it('still answers when neither Redis nor the spool can take the event, and counts the loss', async () => {
      const notADir = join(mkdtempSync(join(tmpdir(), 'gg-spool-')), 'file');
      writeFileSync(notADir, '');
      const isolated = await GatewayHarness.start({
        authUrl: auth.url,
        backendsYaml: backendsYaml(fake.url, fake.url),
        inferenceApiKey: BACKEND_KEY,
        redisUrl: `redis://127.0.0.1:${await freePort()}`,
        spoolDir: join(notADir, 'spool'),
      });
      try {
        const res = await fetch(`${isolated.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'hi' }] }),
        });
        assert.equal(res.status, 200);
        await waitFor(
          'dropped metric',
          async () => (await isolated.metric('gateway_usage_events_dropped_total')) === 1,
        );
      } finally {
        await isolated.stop();
      }
    });
  });

  describe('admin, metrics and CORS', () => {
    it('refuses admin routes to a key without the admin scope', async () => {
      const res = await post('/admin/v1/keys/reload', {}, USER);
      await assertOpenAIError(res, 403, 'insufficient_scope');
      assert.equal(auth.reloads, 0);
    });

    it('reloads the keys through auth for an admin key, and keeps the other admin routes behind the check', async () => {
      const res = await post('/admin/v1/keys/reload', {}, ADMIN);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { keys: 4, errors: [] });
      assert.equal(auth.reloads, 1);
      // Without DATABASE_URL the usage route says what to set, to an admin key only.
      const usage = await fetch(`${gateway.url}/admin/v1/usage`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      assert.equal(usage.status, 503);
      assert.equal(((await usage.json()) as { error: { code: string } }).error.code, 'not_configured');
      const refused = await fetch(`${gateway.url}/admin/v1/usage`, {
        headers: { authorization: `Bearer ${USER}` },
      });
      assert.equal(refused.status, 403);
    });

    it('serves /metrics on the API port to an admin key only', async () => {
      await assertOpenAIError(await fetch(`${gateway.url}/metrics`), 401, 'invalid_api_key');
      const user = await fetch(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${USER}` } });
      await assertOpenAIError(user, 403, 'insufficient_scope');
    });

    it('exposes request, latency, TTFT, token and in-flight metrics under the agreed names', async () => {
      const metrics = await fetch(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const lines = (await metrics.text()).split('\n');
      const has = (name: string, ...labels: string[]) =>
        lines.some((line) => line.startsWith(name) && labels.every((label) => line.includes(label)));
      const expected: [string, ...string[]][] = [
        ['gateway_requests_total{', 'model="fake"', 'route="chat"', 'status="200"'],
        ['gateway_requests_total{', 'model="endless"', 'status="499"'],
        ['gateway_request_duration_seconds_bucket{', 'model="fake"', 'route="chat"'],
        ['gateway_ttft_seconds_count{', 'model="fake"'],
        ['gateway_tokens_total{', 'model="fake"', 'kind="completion"'],
        ['gateway_tokens_total{', 'model="fake"', 'kind="prompt"'],
        ['gateway_in_flight_requests{', 'model="fake"'],
        ['gateway_upstream_errors_total{', 'backend="dead"', 'reason="connect"'],
        ['gateway_usage_events_dropped_total'],
      ];
      for (const [name, ...labels] of expected) assert.ok(has(name, ...labels), `missing ${name} ${labels.join(',')}`);
    });

    it('never writes a client key or the backend key to its logs', () => {
      const logs = gateway.logs.text();
      assert.ok(logs.includes('"url":"/v1/chat/completions"'), 'requests are logged');
      for (const secret of [USER, ADMIN, LIMITED, RESTRICTED, BACKEND_KEY]) assert.ok(!logs.includes(secret));
    });

    it('answers CORS preflight for an allowed origin only', async () => {
      const allowed = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(allowed.status, 204);
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example');
      const sdk = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://app.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,x-stainless-os,x-stainless-retry-count',
        },
      });
      assert.equal(sdk.status, 204);
      assert.equal(
        sdk.headers.get('access-control-allow-headers'),
        'authorization,content-type,x-stainless-os,x-stainless-retry-count',
        "the SDK's own headers are allowed",
      );
      const other = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(other.status, 403);
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      assert.equal(other.headers.get('access-control-allow-headers'), null);
    });
  });
});
