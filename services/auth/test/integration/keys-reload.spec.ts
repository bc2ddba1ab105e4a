import assert from 'node:assert/strict';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { authForSuite, authorize, KeysFile, post, startAuth, type Answer, type AuthInstance } from './auth-harness.js';

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

  it('drops the key whose line an edit broke, keeps the others, and reports the line on /readyz', async () => {
    await keysFile.replace(`alice:${ALICE}:lots\nbob:${BOB}\ncarol:${CAROL}\n`);
    await msUntilStatus(auth, CAROL, 200);
    assert.equal((await authorize(auth.url, { key: ALICE })).status, 401, "alice's old secret stops working");
    assert.equal((await authorize(auth.url, { key: BOB })).status, 200);
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

  it('keeps the last good keys for KEYS_FILE_GRACE_MS when the file disappears, then serves none and says why', async () => {
    await auth.close();
    auth = await startAuth({
      redisUrl: testSettings.TEST_REDIS_URL,
      prefix,
      keysFile: keysFile.path,
      keysFileGraceMs: 800,
    });
    await keysFile.remove();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await authorize(auth.url, { key: BOB })).status, 200, 'within the grace period');
    assert.match(
      (await readyz(auth)).body.checks.keys!,
      /cannot read .* \(ENOENT\); serving 2 keys from the last good load for at most 800 ms/,
    );
    const took = await msUntilStatus(auth, BOB, 401);
    assert.ok(took < 1000, `old keys served ${took} ms past the first look`);
    const ready = await readyz(auth);
    assert.equal(ready.status, 503);
    assert.match(ready.body.checks.keys!, /cannot read .* \(ENOENT\); no key is served until it is fixed/);
    keysFile = await KeysFile.create(`alice:${ALICE}\n`);
  });

  it('keeps the last good keys for KEYS_FILE_GRACE_MS when an edit leaves no valid line, then serves none', async () => {
    await auth.close();
    auth = await startAuth({
      redisUrl: testSettings.TEST_REDIS_URL,
      prefix,
      keysFile: keysFile.path,
      keysFileGraceMs: 800,
    });
    await keysFile.replace('this is not a keys file\n');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await authorize(auth.url, { key: ALICE })).status, 200, 'within the grace period');
    await msUntilStatus(auth, ALICE, 401);
    assert.match((await readyz(auth)).body.checks.keys!, /has 1 bad line\(s\) and no valid one; no key is served/);
  });

  it('refuses a key whose expiry has an impossible offset instead of loading it as never expiring', async () => {
    await keysFile.replace(`alice:${ALICE}\ncarol:${CAROL} expires=2020-01-01T00:00:00+99:99\n`);
    await msUntilStatus(auth, BOB, 401);
    assert.equal((await authorize(auth.url, { key: CAROL })).status, 401);
    assert.match(
      (await readyz(auth)).body.checks.keys!,
      /line 2: key 'carol': expires .* has an offset that is not a real one/,
    );
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
            "key 'carol': unknown option 'colour' (known: rpm, tpm, concurrency, daily_tokens, budget_usd_day, budget_usd_month, models, scope, routes, expires)",
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
  const suite = authForSuite(`alice:${ALICE}\n`, { failedAuthMax: 3 });

  it('refuses further wrong keys from an address with 429 after too many, while other addresses go on', async () => {
    const guesses = [];
    for (let i = 0; i < 4; i++)
      guesses.push((await authorize(suite.auth.url, { key: `sk-guess-${i}-0000000000`, ip: '10.9.9.9' })).status);
    assert.deepEqual(guesses, [401, 401, 401, 429]);
    const blocked = await authorize(suite.auth.url, { key: 'sk-guess-x-0000000000', ip: '10.9.9.9' });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.body.error!.code, 'rate_limit_exceeded');
    assert.ok(Number(blocked.headers.get('retry-after')) >= 1);
    const identified = await post(suite.auth.url, '/v1/identify', { key: 'sk-guess-y-0000000000', ip: '10.9.9.9' });
    assert.equal(identified.status, 429, 'the key check before a body is throttled the same way');
    assert.equal((await authorize(suite.auth.url, { key: 'sk-guess-z-0000000000', ip: '10.1.1.1' })).status, 401);
  });

  it('serves a valid key from an address that sent 30 wrong ones (one proxy in front of many clients)', async () => {
    for (let i = 0; i < 30; i++) await authorize(suite.auth.url, { key: `sk-wrong-${i}-0000000000`, ip: '10.7.7.7' });
    assert.equal((await authorize(suite.auth.url, { key: 'sk-wrong-x-0000000000', ip: '10.7.7.7' })).status, 429);
    assert.equal((await authorize(suite.auth.url, { key: ALICE, ip: '10.7.7.7' })).status, 200);
    const identified = await post(suite.auth.url, '/v1/identify', { key: ALICE, ip: '10.7.7.7' });
    assert.equal(identified.status, 200);
    assert.deepEqual(identified.body, { keyId: 'alice' });
  });

  it('does not count requests without a key against the address', async () => {
    for (let i = 0; i < 5; i++)
      assert.equal((await authorize(suite.auth.url, { key: '', ip: '10.2.2.2' })).status, 401);
    assert.equal((await authorize(suite.auth.url, { key: ALICE, ip: '10.2.2.2' })).status, 200);
  });
});
