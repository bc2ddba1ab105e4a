import assert from 'node:assert/strict';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { authorize, KeysFile, startAuth, type AuthInstance } from './auth-harness.js';

const GRANT_TTL_MS = 250;
const LONG_GRANT_TTL_MS = 3_600_000;

const SECRETS = {
  plain: 'sk-grant-plain-00000000001',
  rpm: 'sk-grant-rpm-0000000000002',
  tpm: 'sk-grant-tpm-0000000000003',
  quota: 'sk-grant-quota-00000000004',
  budget: 'sk-grant-budget-0000000005',
  slots: 'sk-grant-slots-00000000006',
  expiring: 'sk-grant-expiring-000000007',
};

describe('auth grants', function () {
  const prefix = testRedisPrefix();
  let keysFile: KeysFile;
  let granting: AuthInstance;
  let longGrants: AuthInstance;
  let notGranting: AuthInstance;

  before(async () => {
    const expires = new Date(Date.now() + 60_000).toISOString();
    keysFile = await KeysFile.create(
      [
        `plain:${SECRETS.plain}`,
        `rpm:${SECRETS.rpm}:100`,
        `tpm:${SECRETS.tpm} rpm=100 tpm=1000`,
        `quota:${SECRETS.quota} daily_tokens=1000`,
        `budget:${SECRETS.budget} budget_usd_month=1`,
        `slots:${SECRETS.slots} rpm=100 concurrency=4`,
        `expiring:${SECRETS.expiring} expires=${expires}`,
      ].join('\n'),
    );
    const options = { redisUrl: testSettings.TEST_REDIS_URL, prefix, keysFile: keysFile.path };
    [granting, longGrants, notGranting] = await Promise.all([
      startAuth({ ...options, grantTtlMs: GRANT_TTL_MS }),
      startAuth({ ...options, grantTtlMs: LONG_GRANT_TTL_MS }),
      startAuth(options),
    ]);
  });

  after(async () => {
    await Promise.all([granting, longGrants, notGranting].map((a) => a.close()));
    await keysFile.remove();
    await deleteRedisPrefix(prefix);
  });

  it('grants reuse of a decision for keys whose only per-request limit is rpm', async () => {
    for (const key of [SECRETS.plain, SECRETS.rpm]) {
      const answer = await authorize(granting.url, { key });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.grant, { ttlMs: GRANT_TTL_MS });
    }
  });

  it('grants nothing to keys with token, quota, budget or concurrency limits', async () => {
    for (const key of [SECRETS.tpm, SECRETS.quota, SECRETS.budget, SECRETS.slots]) {
      const answer = await authorize(granting.url, { key });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.grant, undefined, `no grant for ${answer.body.keyId}`);
    }
  });

  it('never grants past the expiry of the key', async () => {
    const answer = await authorize(longGrants.url, { key: SECRETS.expiring });
    assert.equal(answer.status, 200);
    assert.ok(answer.body.grant!.ttlMs <= 60_000 && answer.body.grant!.ttlMs > 50_000);
  });

  it('grants nothing when GRANT_TTL_MS is 0', async () => {
    const answer = await authorize(notGranting.url, { key: SECRETS.plain });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.grant, undefined);
  });
});
