import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sha256Thread } from '../../src/sha256-thread.js';

const MB = 1024 * 1024;

describe('sha256 thread', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gg-sha-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hashes a file prefix and then the chunks after it as one stream', async () => {
    const prefix = randomBytes(3 * MB);
    const rest = randomBytes(2 * MB + 17);
    const path = join(dir, 'prefix.bin');
    await writeFile(path, Buffer.concat([prefix, randomBytes(1000)]));
    const hash = new Sha256Thread();
    await hash.addFile(path, prefix.length);
    for (let at = 0; at < rest.length; at += 65_536) hash.update(rest.subarray(at, at + 65_536));
    const want = createHash('sha256').update(prefix).update(rest).digest('hex');
    assert.equal(await hash.digest(), want);
  });

  it('asks the sender to wait while more than its bound waits to be hashed, and makes room as it hashes', async () => {
    const hash = new Sha256Thread(4 * MB);
    try {
      const data = randomBytes(8 * MB);
      hash.update(data);
      assert.equal(hash.full, true);
      await hash.whenRoom();
      assert.equal(hash.full, false);
      assert.equal(await hash.digest(), createHash('sha256').update(data).digest('hex'));
    } finally {
      await hash.close();
    }
  });

  it('fails the digest when hashing failed earlier, while nobody was waiting, instead of hashing part of the data', async () => {
    const hash = new Sha256Thread();
    const addFailed = assert.rejects(hash.addFile(join(dir, 'missing.bin'), 1000), /ENOENT/);
    await sleep(200);
    hash.update(randomBytes(2 * MB));
    await assert.rejects(hash.digest(), /sha256: .*ENOENT/);
    await addFailed;
  });

  it('fails when the file is shorter than the bytes it was asked to hash', async () => {
    const path = join(dir, 'short.bin');
    await writeFile(path, randomBytes(100));
    const hash = new Sha256Thread();
    await assert.rejects(hash.addFile(path, 1000), /has 100 bytes, not 1000/);
    await assert.rejects(hash.digest(), /has 100 bytes, not 1000/);
  });
});
