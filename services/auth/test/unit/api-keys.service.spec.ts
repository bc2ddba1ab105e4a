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
  const setup = async (text: string) => {
    const file = new FakeFile({ text });
    const keys = new ApiKeysService(
      file as unknown as KeysFileRepository,
      createLogger({ service: 'auth', destination: logs }),
    );
    await keys.reload();
    return { file, keys };
  };

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

  it('drops a key whose line is gone and keeps a key whose line broke', async () => {
    const { file, keys } = await setup(`alice:${ALICE}:10\nbob:${BOB}`);
    file.content = { text: `alice:${ALICE}:ten\ncarol:${CAROL}` };
    const result = await keys.reload();
    assert.equal(result.keys, 2);
    assert.equal(keys.lookup(CAROL).kind, 'found');
    assert.equal(keys.lookup(BOB).kind, 'unknown');
    const alice = keys.lookup(ALICE);
    assert.equal(alice.kind === 'found' && alice.key.limits.rpm, 10);
    assert.match(keys.problem()!, /line 1: key 'alice': the rpm field after the secret must be a whole number/);
  });

  it('keeps the whole last good set when the file cannot be read', async () => {
    const { file, keys } = await setup(`alice:${ALICE}`);
    file.content = { problem: 'cannot read /keys (EACCES)' };
    await keys.reload();
    assert.equal(keys.lookup(ALICE).kind, 'found');
    assert.match(keys.problem()!, /EACCES/);
    assert.ok(!logs.text().includes(ALICE) && !logs.text().includes(BOB));
  });

  it("gives a key whose line sets no rpm the DEFAULT_KEY_RPM (the seed's MAX_REQUESTS_PER_MINUTE)", async () => {
    const keys = new ApiKeysService(
      new FakeFile({ text: `alice:${ALICE}\nbob:${BOB}:5` }) as unknown as KeysFileRepository,
      createLogger({ service: 'auth', destination: logs }),
      () => undefined,
      120,
    );
    await keys.reload();
    assert.equal(keys.byId('alice')?.limits.rpm, 120);
    assert.equal(keys.byId('bob')?.limits.rpm, 5);
  });
});
