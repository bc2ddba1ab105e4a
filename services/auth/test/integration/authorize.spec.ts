import assert from 'node:assert/strict';
import { parsePriceTable } from '@gguf-gateway/shared';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { authorize, KeysFile, post, startAuth, type Answer, type AuthInstance } from './auth-harness.js';

const SECRETS = {
  plain: 'sk-plain-000000000000000001',
  rpm: 'sk-rpm-0000000000000000002',
  tokens: 'sk-tokens-00000000000000003',
  quota: 'sk-quota-000000000000000004',
  budget: 'sk-budget-00000000000000005',
  slots: 'sk-slots-000000000000000006',
  expired: 'sk-expired-0000000000000007',
  admin: 'sk-admin-000000000000000008',
  models: 'sk-models-00000000000000009',
  ttl: 'sk-ttl-00000000000000000010',
  monthly: 'sk-monthly-000000000000011',
  routes: 'sk-routes-00000000000000012',
};

const KEYS = [
  `plain:${SECRETS.plain}`,
  `rpm:${SECRETS.rpm}:3`,
  `tokens:${SECRETS.tokens} tpm=100`,
  `quota:${SECRETS.quota} daily_tokens=50`,
  `budget:${SECRETS.budget} budget_usd_day=0.001`,
  `slots:${SECRETS.slots} concurrency=2`,
  `expired:${SECRETS.expired} expires=2020-01-01T00:00:00+02:00`,
  `admin:${SECRETS.admin} scope=admin`,
  `models:${SECRETS.models} models=tiny*|qwen2`,
  `ttl:${SECRETS.ttl} concurrency=1`,
  `monthly:${SECRETS.monthly} budget_usd_month=0.0005`,
  `routes:${SECRETS.routes} routes=chat|embeddings`,
].join('\n');

describe('auth service against real Redis', function () {
  const prefix = testRedisPrefix();
  const answers: Answer[] = [];
  let keysFile: KeysFile;
  let auth: AuthInstance;
  let shortLeases: AuthInstance;

  const ask = async (key: string, extra: Record<string, unknown> = {}, via = auth) => {
    const answer = await authorize(via.url, { key, ...extra });
    answers.push(answer);
    return answer;
  };
  const settle = (lease: string, promptTokens: number, completionTokens: number, via = auth) =>
    post(via.url, '/v1/settle', { lease, promptTokens, completionTokens });

  before(async () => {
    keysFile = await KeysFile.create(KEYS);
    const prices = parsePriceTable('models:\n  "tiny*": { prompt: 10, completion: 30 }\n');
    auth = await startAuth({ redisUrl: testSettings.TEST_REDIS_URL, prefix, keysFile: keysFile.path, prices });
    shortLeases = await startAuth({
      redisUrl: testSettings.TEST_REDIS_URL,
      prefix,
      keysFile: keysFile.path,
      leaseTtlSec: 1,
    });
  });

  after(async () => {
    await auth?.close();
    await shortLeases?.close();
    await keysFile?.remove();
    await deleteRedisPrefix(prefix);
  });

  it('allows a known key and returns its id, limits and a lease', async () => {
    const res = await ask(SECRETS.plain);
    assert.equal(res.status, 200);
    assert.equal(res.body.keyId, 'plain');
    assert.equal(typeof res.body.lease, 'string');
    assert.equal(res.body.leaseTtlSec, 60);
    assert.deepEqual(res.body.remaining, { requests: null, tokens: null });
    assert.equal(res.headers.get('x-ratelimit-limit-requests'), null);
  });

  const invalidKeys: [string, string, RegExp][] = [
    ['a missing key', '', /didn't provide an API key/],
    ['a malformed key', 'two words', /malformed/],
    ['an unknown key', 'sk-unknown-00000000000000000', /Incorrect API key provided/],
    ['an expired key', SECRETS.expired, /The API key 'expired' expired at 2019-12-31T22:00:00.000Z/],
  ];
  for (const [what, key, message] of invalidKeys) {
    it(`returns 401 invalid_api_key with its own message for ${what}`, async () => {
      const res = await ask(key);
      assert.equal(res.status, 401);
      assert.equal(res.body.error!.code, 'invalid_api_key');
      assert.equal(res.body.error!.type, 'authentication_error');
      assert.match(res.body.error!.message, message);
    });
  }

  it('returns 403 insufficient_scope for an admin route without the admin scope', async () => {
    const refused = await ask(SECRETS.plain, { route: 'admin', model: null });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error!.code, 'insufficient_scope');
    const allowed = await ask(SECRETS.admin, { route: 'admin', model: null });
    assert.equal(allowed.status, 200);
    assert.deepEqual(allowed.body.scopes, ['admin']);
  });

  it("returns 403 insufficient_scope for an inference route outside the key's routes=, and serves the others", async () => {
    assert.equal((await ask(SECRETS.routes, { route: 'chat' })).status, 200);
    assert.equal((await ask(SECRETS.routes, { route: 'embeddings' })).status, 200);
    assert.equal((await ask(SECRETS.routes, { route: 'models', model: null })).status, 200);
    const refused = await ask(SECRETS.routes, { route: 'messages' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error!.code, 'insufficient_scope');
    assert.match(refused.body.error!.message, /messages route/);
    assert.equal((await ask(SECRETS.plain, { route: 'rerank' })).status, 200);
  });

  it("returns 403 model_not_allowed for a model outside the key's globs", async () => {
    assert.equal((await ask(SECRETS.models, { model: 'tiny-llama' })).status, 200);
    assert.equal((await ask(SECRETS.models, { model: 'qwen2' })).status, 200);
    const refused = await ask(SECRETS.models, { model: 'qwen2.5' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error!.code, 'model_not_allowed');
    assert.equal(refused.body.error!.param, 'model');
    assert.equal((await ask(SECRETS.models, { route: 'models', model: null })).status, 200);
  });

  it("returns 429 with Retry-After and x-ratelimit headers when the key's rpm is spent", async () => {
    const allowed = [];
    for (let i = 0; i < 3; i++) allowed.push(await ask(SECRETS.rpm));
    assert.deepEqual(
      allowed.map((a) => [a.status, a.headers.get('x-ratelimit-remaining-requests')]),
      [
        [200, '2'],
        [200, '1'],
        [200, '0'],
      ],
    );
    assert.equal(allowed[0]!.headers.get('x-ratelimit-limit-requests'), '3');
    assert.match(allowed[0]!.headers.get('x-ratelimit-reset-requests')!, /^(\d+s|\d+ms|1m0s)$/);
    const refused = await ask(SECRETS.rpm);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'rate_limit_exceeded');
    assert.equal(refused.body.error!.type, 'rate_limit_error');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(refused.headers.get('x-ratelimit-limit-requests'), '3');
  });

  it('blocks on tpm once settled tokens reach it, with the token headers', async () => {
    const first = await ask(SECRETS.tokens);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-ratelimit-limit-tokens'), '100');
    assert.equal(first.headers.get('x-ratelimit-remaining-tokens'), '100');
    assert.equal((await settle(first.body.lease!, 60, 40)).status, 204);
    const refused = await ask(SECRETS.tokens);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'rate_limit_exceeded');
    assert.match(refused.body.error!.message, /100 tokens per minute/);
    assert.equal(refused.headers.get('x-ratelimit-remaining-tokens'), '0');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  });

  it('charges a lease settled twice only once', async () => {
    const first = await ask(SECRETS.quota);
    assert.equal(first.status, 200);
    assert.equal((await settle(first.body.lease!, 20, 0)).status, 204);
    assert.equal((await settle(first.body.lease!, 20, 0)).status, 204);
    assert.equal((await ask(SECRETS.quota)).status, 200, 'one charge of 20 leaves the daily 50 open');
  });

  it('returns 429 quota_exceeded once settled tokens reach the daily quota', async () => {
    const res = await ask(SECRETS.quota);
    assert.equal(res.status, 200);
    assert.equal((await settle(res.body.lease!, 10, 25)).status, 204);
    const refused = await ask(SECRETS.quota);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'quota_exceeded');
    const now = new Date();
    const untilMidnight =
      (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
    assert.ok(
      Math.abs(Number(refused.headers.get('retry-after')) - untilMidnight) <= 2,
      'Retry-After runs to 00:00 UTC',
    );
  });

  it('returns 429 budget_exceeded once settled cost reaches the daily USD budget', async () => {
    // 10 prompt tokens at $10/M and 20 completion tokens at $30/M: $0.0007 of a $0.001 budget.
    const first = await ask(SECRETS.budget, { model: 'tiny-llama' });
    await settle(first.body.lease!, 10, 20);
    assert.equal((await ask(SECRETS.budget, { model: 'tiny-llama' })).status, 200);
    const second = await ask(SECRETS.budget, { model: 'tiny-llama' });
    await settle(second.body.lease!, 10, 20);
    const refused = await ask(SECRETS.budget, { model: 'tiny-llama' });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'budget_exceeded');
    assert.match(refused.body.error!.message, /Daily budget of \$0.001/);
  });

  it('returns 429 budget_exceeded once settled cost reaches the monthly USD budget', async () => {
    const first = await ask(SECRETS.monthly, { model: 'tiny-llama' });
    assert.equal(first.status, 200);
    await settle(first.body.lease!, 10, 20);
    const refused = await ask(SECRETS.monthly, { model: 'tiny-llama' });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'budget_exceeded');
    assert.match(refused.body.error!.message, /Monthly budget of \$0.0005/);
    const now = new Date();
    const untilNextMonth = (Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000;
    assert.ok(Math.abs(Number(refused.headers.get('retry-after')) - untilNextMonth) <= 2);
  });

  it('releases a concurrency slot on settle', async () => {
    const a = await ask(SECRETS.slots);
    const b = await ask(SECRETS.slots);
    assert.deepEqual([a.status, b.status], [200, 200]);
    const refused = await ask(SECRETS.slots);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'rate_limit_exceeded');
    assert.match(refused.body.error!.message, /concurrent/);
    await settle(a.body.lease!, 1, 1);
    assert.equal((await ask(SECRETS.slots)).status, 200);
  });

  it('releases a concurrency slot by TTL when nobody settles it, and renew keeps it held', async () => {
    const held = await ask(SECRETS.ttl, {}, shortLeases);
    assert.equal(held.status, 200);
    assert.equal(held.body.leaseTtlSec, 1);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 400));
      assert.equal((await post(shortLeases.url, '/v1/renew', { lease: held.body.lease })).status, 204);
    }
    assert.equal((await ask(SECRETS.ttl, {}, shortLeases)).status, 429, 'renewed lease still holds the slot');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await ask(SECRETS.ttl, {}, shortLeases)).status, 200, 'expired lease freed the slot');
    assert.equal((await post(shortLeases.url, '/v1/renew', { lease: 'no-such-lease' })).status, 404);
  });

  it('answers a bad settle body with a 400 in the OpenAI shape', async () => {
    const res = await post(auth.url, '/v1/settle', { lease: 'x', promptTokens: -1, completionTokens: 0 });
    assert.equal(res.status, 400);
    assert.equal(res.body.error!.param, 'promptTokens');
  });

  it('counts decisions and loaded keys in /metrics', async () => {
    const text = await (await fetch(`${auth.url}/metrics`)).text();
    assert.match(text, /auth_decisions_total\{result="allowed",service="auth"\} \d+/);
    assert.match(text, /auth_decisions_total\{result="invalid_api_key",service="auth"\} \d+/);
    assert.match(text, /auth_keys_loaded\{service="auth"\} 12/);
    assert.match(text, /auth_redis_degraded\{service="auth"\} 0/);
  });

  it('says ready on /readyz with the keys loaded and Redis up', async () => {
    const res = await fetch(`${auth.url}/readyz`);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    assert.equal(res.status, 200);
    assert.deepEqual(body, { status: 'ready', checks: { keys: 'ok (12 keys)', redis: 'ok' } });
  });

  it('never puts a secret from the keys file in a log line or an error body', () => {
    const everything = [auth.logs.text(), shortLeases.logs.text(), ...answers.map((a) => a.text)].join('\n');
    assert.ok(answers.length > 20 && auth.logs.lines.length > 0);
    for (const [name, secret] of Object.entries(SECRETS)) {
      assert.ok(!everything.includes(secret), `the secret of '${name}' leaked`);
    }
  });
});
