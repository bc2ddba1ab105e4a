import assert from 'node:assert/strict';
import { TEST_AUTH_INTERNAL_TOKEN } from '@gguf-gateway/testkit';
import { authForSuite, authorize, post } from './auth-harness.js';

const ALICE = 'sk-alice-0000000000000000001';
const WRONG_TOKEN = 'not-the-internal-token-42424242';
const INTERNAL = [
  ['/v1/authorize', { key: ALICE, model: 'tiny', route: 'chat', ip: '10.0.0.1' }],
  ['/v1/identify', { key: ALICE, ip: '10.0.0.1' }],
  ['/v1/settle', { lease: 'some-lease', promptTokens: 1, completionTokens: 1 }],
  ['/v1/renew', { lease: 'some-lease' }],
  ['/v1/keys/reload', {}],
] as const;

describe('auth internal endpoints', function () {
  const suite = authForSuite(`alice:${ALICE}\n`, { failedAuthMax: 3 });

  for (const [path, body] of INTERNAL) {
    it(`answers ${path} with 401 to a caller without the internal token or with a wrong one`, async () => {
      for (const token of [null, WRONG_TOKEN, '']) {
        const answer = await post(suite.auth.url, path, body, token);
        assert.equal(answer.status, 401, `${path} with token ${token === null ? 'absent' : `'${token}'`}`);
        assert.equal(answer.body.error?.code, 'invalid_internal_token');
      }
    });
  }

  it('serves the gateway, which holds the token', async () => {
    assert.equal((await authorize(suite.auth.url, { key: ALICE })).status, 200);
    assert.equal((await post(suite.auth.url, '/v1/keys/reload', {})).status, 200);
  });

  it('refuses a tokenless caller before reading its body', async () => {
    const res = await fetch(`${suite.auth.url}/v1/authorize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"key": ',
    });
    assert.equal(res.status, 401);
  });

  it('never lets a caller without the token spend the failed-key allowance of an address it names', async () => {
    const victim = '203.0.113.7';
    for (let i = 0; i < 10; i++) {
      const answer = await post(
        suite.auth.url,
        '/v1/authorize',
        { key: `sk-guess-${i}-000000000000000`, model: null, route: 'chat', ip: victim },
        null,
      );
      assert.equal(answer.status, 401);
    }
    const fromVictim = await authorize(suite.auth.url, { key: ALICE, ip: victim });
    assert.equal(fromVictim.status, 200, 'the address named by tokenless calls is not blocked');
  });

  it('keeps the token and any presented one out of its logs', async () => {
    await post(
      suite.auth.url,
      '/v1/authorize',
      { key: ALICE, model: null, route: 'chat', ip: '10.0.0.2' },
      WRONG_TOKEN,
    );
    await authorize(suite.auth.url, { key: ALICE });
    const logs = suite.auth.logs.text();
    assert.ok(!logs.includes(TEST_AUTH_INTERNAL_TOKEN), 'the internal token is not logged');
    assert.ok(!logs.includes(WRONG_TOKEN), 'a presented token is not logged');
  });
});
