import assert from 'node:assert/strict';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { authorize, KeysFile, startAuth, type AuthInstance } from './auth-harness.js';

const SECRET = 'sk-burst-000000000000000001';
const RPM = 20;

describe('limits shared by two auth instances through one Redis', function () {
  const prefix = testRedisPrefix();
  let keysFile: KeysFile;
  let instances: AuthInstance[] = [];

  before(async () => {
    keysFile = await KeysFile.create(`burst:${SECRET}:${RPM}\nslots:sk-slots-00000000000000002 concurrency=3\n`);
    const options = { redisUrl: testSettings.TEST_REDIS_URL, prefix, keysFile: keysFile.path };
    instances = await Promise.all([startAuth(options), startAuth(options)]);
  });

  after(async () => {
    await Promise.all(instances.map((i) => i.close()));
    await keysFile.remove();
    await deleteRedisPrefix(prefix);
  });

  it(`allows exactly rpm across both in a burst of 3x rpm concurrent requests`, async () => {
    const burst = Array.from({ length: 3 * RPM }, (_, i) => authorize(instances[i % 2]!.url, { key: SECRET }));
    const statuses = (await Promise.all(burst)).map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 200).length, RPM);
    assert.equal(statuses.filter((s) => s === 429).length, 2 * RPM);
  });

  it('shares concurrency slots across both instances', async () => {
    const burst = Array.from({ length: 9 }, (_, i) =>
      authorize(instances[i % 2]!.url, { key: 'sk-slots-00000000000000002' }),
    );
    const statuses = (await Promise.all(burst)).map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 200).length, 3);
  });
});
