import assert from 'node:assert/strict';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { authorize, KeysFile, post, startAuth, type Answer, type AuthInstance } from './auth-harness.js';

const ALICE = 'sk-alice-0000000000000000001';
const BOB = 'sk-bob-000000000000000000002';
const CAROL = 'sk-carol-0000000000000000003';

async function readyz(
  auth: AuthInstance,
): Promise<{ status: number; body: { status: string; checks: Record<string, string> } }> {
  const res = await fetch(`${auth.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
}

/** Polls authorize until it answers `status`, returning how long that took. */
async function msUntilStatus(auth: AuthInstance, key: string, status: number, limitMs = 3000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < limitMs) {
    if ((await authorize(auth.url, { key })).status === status) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no ${status} within ${limitMs} ms`);
}

describe('keys file reload', function () {
  const prefix = testRedisPrefix();
  const answers: Answer[] = [];
  let keysFile: KeysFile;
  let auth: AuthInstance;

  beforeEach(async () => {
    keysFile = await KeysFile.create(`alice:${ALICE}:100\nbob:${BOB}\n`);
    auth = await startAuth({ redisUrl: testSettings.TEST_REDIS_URL, prefix, keysFile: keysFile.path });
  });

  afterEach(async () => {
    answers.push(...(await Promise.all([ALICE, BOB, CAROL].map((key) => authorize(auth.url, { key })))));
    const leaked = [ALICE, BOB, CAROL].filter(
      (s) => auth.logs.text().includes(s) || answers.some((a) => a.text.includes(s)),
    );
    assert.deepEqual(leaked, [], 'no secret in any log line or answer');
    await auth.close();
    await keysFile.remove();
  });

  after(() => deleteRedisPrefix(prefix));

  it('revokes a key removed from the file within one second, without a restart', async () => {
    assert.equal((await authorize(auth.url, { key: BOB })).status, 200);
    await keysFile.replace(`alice:${ALICE}:100\n`);
    const took = await msUntilStatus(auth, BOB, 401);
    assert.ok(took < 1000, `revoked after ${took} ms`);
    assert.equal((await authorize(auth.url, { key: ALICE })).status, 200);
  });

  it('revokes within one second when an editor rewrites the file in place', async () => {
    await keysFile.editInPlace(`bob:${BOB}\n`);
    const took = await msUntilStatus(auth, ALICE, 401);
    assert.ok(took < 1000, `revoked after ${took} ms`);
  });

  it('keeps the last good entry of a key whose line an edit broke, and reports the line on /readyz', async () => {
    await keysFile.replace(`alice:${ALICE}:lots\nbob:${BOB}\ncarol:${CAROL}\n`);
    await msUntilStatus(auth, CAROL, 200);
    const alice = await authorize(auth.url, { key: ALICE });
    assert.equal(alice.status, 200, 'alice keeps working on her last good line');
    assert.equal(alice.headers.get('x-ratelimit-limit-requests'), '100');
    const ready = await readyz(auth);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, 'degraded');
    assert.match(ready.body.checks.keys!, /line 1: key 'alice': the rpm field after the secret must be a whole number/);
    assert.ok(
      auth.logs
        .records()
        .some((r) => r.line === 1 && /the rpm field after the secret must be a whole number/.test(String(r.msg))),
    );
  });

  it('keeps every last good key when an edit leaves no valid line or the file disappears', async () => {
    await keysFile.replace('this is not a keys file\n');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await authorize(auth.url, { key: ALICE })).status, 200);
    assert.equal((await authorize(auth.url, { key: BOB })).status, 200);
    await keysFile.remove();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await authorize(auth.url, { key: BOB })).status, 200);
    assert.match(
      (await readyz(auth)).body.checks.keys!,
      /cannot read .* \(ENOENT\); serving 2 keys from the last good load/,
    );
    keysFile = await KeysFile.create('');
  });

  it('reloads now on POST /v1/keys/reload and reports the bad lines', async () => {
    await keysFile.editInPlace(`alice:${ALICE}\ncarol:${CAROL} colour=blue\n`);
    const res = await post(auth.url, '/v1/keys/reload', {});
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      keys: 1,
      errors: [
        {
          line: 2,
          message:
            "key 'carol': unknown option 'colour' (known: rpm, tpm, concurrency, daily_tokens, budget_usd_day, budget_usd_month, models, scope, expires)",
        },
      ],
    });
    assert.equal((await authorize(auth.url, { key: BOB })).status, 401);
  });

  it('fails closed with every request refused when the file holds no key', async () => {
    await keysFile.replace('# every key revoked\n');
    await msUntilStatus(auth, ALICE, 401);
    const res = await authorize(auth.url, { key: ALICE });
    assert.equal(res.body.error!.code, 'invalid_api_key');
    assert.match(res.body.error!.message, /no API keys loaded/);
    const empty = await authorize(auth.url, { key: '' });
    assert.match(empty.body.error!.message, /no API keys loaded/);
    const ready = await readyz(auth);
    assert.equal(ready.status, 503);
    assert.match(ready.body.checks.keys!, /no API keys are loaded/);
  });
});

describe('failed-key throttle per client address', function () {
  const prefix = testRedisPrefix();
  let keysFile: KeysFile;
  let auth: AuthInstance;

  before(async () => {
    keysFile = await KeysFile.create(`alice:${ALICE}\n`);
    auth = await startAuth({
      redisUrl: testSettings.TEST_REDIS_URL,
      prefix,
      keysFile: keysFile.path,
      failedAuthMax: 3,
    });
  });

  after(async () => {
    await auth.close();
    await keysFile.remove();
    await deleteRedisPrefix(prefix);
  });

  it('refuses further wrong keys from an address with 429 after too many, while other addresses go on', async () => {
    const guesses = [];
    for (let i = 0; i < 4; i++)
      guesses.push((await authorize(auth.url, { key: `sk-guess-${i}-0000000000`, ip: '10.9.9.9' })).status);
    assert.deepEqual(guesses, [401, 401, 401, 429]);
    const blocked = await authorize(auth.url, { key: 'sk-guess-x-0000000000', ip: '10.9.9.9' });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.body.error!.code, 'rate_limit_exceeded');
    assert.ok(Number(blocked.headers.get('retry-after')) >= 1);
    const identified = await post(auth.url, '/v1/identify', { key: 'sk-guess-y-0000000000', ip: '10.9.9.9' });
    assert.equal(identified.status, 429, 'the key check before a body is throttled the same way');
    assert.equal((await authorize(auth.url, { key: 'sk-guess-z-0000000000', ip: '10.1.1.1' })).status, 401);
  });

  it('serves a valid key from an address that sent 30 wrong ones (one proxy in front of many clients)', async () => {
    for (let i = 0; i < 30; i++) await authorize(auth.url, { key: `sk-wrong-${i}-0000000000`, ip: '10.7.7.7' });
    assert.equal((await authorize(auth.url, { key: 'sk-wrong-x-0000000000', ip: '10.7.7.7' })).status, 429);
    assert.equal((await authorize(auth.url, { key: ALICE, ip: '10.7.7.7' })).status, 200);
    const identified = await post(auth.url, '/v1/identify', { key: ALICE, ip: '10.7.7.7' });
    assert.equal(identified.status, 200);
    assert.deepEqual(identified.body, { keyId: 'alice' });
  });

  it('does not count requests without a key against the address', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await authorize(auth.url, { key: '', ip: '10.2.2.2' })).status, 401);
    assert.equal((await authorize(auth.url, { key: ALICE, ip: '10.2.2.2' })).status, 200);
  });
});
