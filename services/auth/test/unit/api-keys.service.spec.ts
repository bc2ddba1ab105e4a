import assert from 'node:assert/strict';
import { createLogger } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { ApiKeysService } from '../../src/api-keys.service.js';
import type { KeysFileRepository } from '../../src/keys-file.repository.js';

const ALICE = 'sk-alice-0000000000000000001';
const BOB = 'sk-bob-000000000000000000002';
const CAROL = 'sk-carol-0000000000000000003';

class FakeFile {
  readonly path = '/keys';
  constructor(public content: { text: string } | { problem: string }) {}
  read() {
    return Promise.resolve(this.content);
  }
}

describe('API keys service', () => {
  const logs = new LogCapture();
  const setup = async (text: string, graceMs?: number) => {
    const file = new FakeFile({ text });
    const keys = new ApiKeysService(
      file as unknown as KeysFileRepository,
      createLogger({ service: 'auth', destination: logs }),
      undefined,
      graceMs,
    );
    await keys.reload();
    return { file, keys };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('tells missing, malformed and unknown keys apart', async () => {
    const { keys } = await setup(`alice:${ALICE}`);
    assert.equal(keys.lookup('').kind, 'missing');
    assert.equal(keys.lookup('has space').kind, 'malformed');
    assert.equal(keys.lookup('x'.repeat(600)).kind, 'malformed');
    assert.equal(keys.lookup('sk-unknown-000000000000').kind, 'unknown');
    const found = keys.lookup(ALICE);
    assert.equal(found.kind === 'found' && found.key.id, 'alice');
  });

  it('says no keys are loaded before it looks at the presented key', async () => {
    const { keys } = await setup('# nothing yet');
    assert.equal(keys.lookup(ALICE).kind, 'no_keys_loaded');
    assert.equal(keys.lookup('').kind, 'no_keys_loaded');
  });

  it('drops a key whose line is gone, and a key whose line no longer parses', async () => {
    const { file, keys } = await setup(`alice:${ALICE}:10\nbob:${BOB}`);
    file.content = { text: `alice:${ALICE}:ten\ncarol:${CAROL}` };
    const result = await keys.reload();
    assert.equal(result.keys, 1);
    assert.equal(keys.lookup(CAROL).kind, 'found');
    assert.equal(keys.lookup(BOB).kind, 'unknown');
    assert.equal(keys.lookup(ALICE).kind, 'unknown', "a broken line never keeps the key's old secret");
    assert.match(keys.problem()!, /line 1: key 'alice': the rpm field after the secret must be a whole number/);
  });

  it('keeps the last good set while the file cannot be read, for the grace period only', async () => {
    const { file, keys } = await setup(`alice:${ALICE}`, 100);
    file.content = { problem: 'cannot read /keys (EACCES)' };
    await keys.reload();
    assert.equal(keys.lookup(ALICE).kind, 'found');
    assert.match(keys.problem()!, /EACCES.*serving 1 keys from the last good load for at most 100 ms/);
    await sleep(120);
    await keys.reload();
    assert.equal(keys.lookup(ALICE).kind, 'no_keys_loaded');
    assert.match(keys.problem()!, /cannot read \/keys \(EACCES\); no key is served until it is fixed/);
    file.content = { text: `alice:${ALICE}` };
    await keys.reload();
    assert.equal(keys.lookup(ALICE).kind, 'found', 'serves again once the file is back');
    assert.equal(keys.problem(), null);
    assert.ok(!logs.text().includes(ALICE) && !logs.text().includes(BOB));
  });

  it('treats a file with bad lines and no good one like an unreadable file', async () => {
    const { file, keys } = await setup(`alice:${ALICE}`, 100);
    file.content = { text: 'this is not a keys file' };
    await keys.reload(false);
    assert.equal(keys.lookup(ALICE).kind, 'found', 'a write caught halfway does not lock everyone out at once');
    await sleep(120);
    await keys.reload(false);
    assert.equal(keys.lookup(ALICE).kind, 'no_keys_loaded');
    assert.match(keys.problem()!, /has 1 bad line\(s\) and no valid one; no key is served until it is fixed/);
  });

  it("gives a key whose line sets no rpm the DEFAULT_KEY_RPM (the seed's MAX_REQUESTS_PER_MINUTE)", async () => {
    const keys = new ApiKeysService(
      new FakeFile({ text: `alice:${ALICE}\nbob:${BOB}:5` }) as unknown as KeysFileRepository,
      createLogger({ service: 'auth', destination: logs }),
      () => undefined,
      30_000,
      120,
    );
    await keys.reload();
    assert.equal(keys.byId('alice')?.limits.rpm, 120);
    assert.equal(keys.byId('bob')?.limits.rpm, 5);
  });
});
