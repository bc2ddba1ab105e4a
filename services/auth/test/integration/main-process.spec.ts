import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  deleteRedisPrefix,
  freePort,
  repoRoot,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import { authorize, KeysFile } from './auth-harness.js';

const ALICE = 'sk-alice-0000000000000000001';
const BOB = 'sk-bob-000000000000000000002';

describe('auth as a process (node services/auth/dist/main.js)', function () {
  const prefix = testRedisPrefix();
  let keysFile: KeysFile;
  let proc: ManagedProcess;
  let url: string;

  before(async () => {
    keysFile = await KeysFile.create(`alice:${ALICE}\nbob:${BOB}\n`);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    proc = startProcess('node', [join(repoRoot, 'services/auth/dist/main.js')], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        API_KEYS_FILE: keysFile.path,
        AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
        // Long enough that only SIGHUP can explain a reload within this test.
        KEYS_FILE_POLL_MS: '600000',
        LOG_LEVEL: 'debug',
      },
    });
    await waitFor('auth ready', async () => (await fetch(`${url}/readyz`)).status === 200, 10_000);
  });

  after(async () => {
    if (proc) await stopProcess(proc);
    await keysFile?.remove();
    await deleteRedisPrefix(prefix);
  });

  it('reloads the keys file on SIGHUP', async () => {
    assert.equal((await authorize(url, { key: BOB })).status, 200);
    await keysFile.replace(`alice:${ALICE}\n`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await authorize(url, { key: BOB })).status, 200, 'no reload before the signal');
    proc.child.kill('SIGHUP');
    await waitFor('bob revoked', async () => (await authorize(url, { key: BOB })).status === 401, 2000, 20);
    assert.equal((await authorize(url, { key: ALICE })).status, 200);
  });

  it('stops cleanly on SIGTERM without a secret in its output', async () => {
    await stopProcess(proc);
    assert.equal(proc.child.exitCode, 0, proc.output());
    assert.match(proc.output(), /SIGHUP: reloading the keys file/);
    assert.ok(!proc.output().includes(ALICE) && !proc.output().includes(BOB));
  });
});
