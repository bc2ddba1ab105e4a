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

  it('hashes parts of files queued in order as one stream, reading them back in buffer-sized steps', async () => {
    const first = randomBytes(3 * MB);
    const second = randomBytes(9 * MB + 17);
    const firstPath = join(dir, 'first.bin');
    const secondPath = join(dir, 'second.bin');
    await writeFile(firstPath, Buffer.concat([first, randomBytes(1000)]));
    await writeFile(secondPath, Buffer.concat([randomBytes(100), second]));
    const hash = new Sha256Thread();
    await hash.addFile(firstPath, first.length);
    for (let at = 0; at < second.length; at += 2 * MB) {
      hash.queueFile(secondPath, 100 + at, 100 + Math.min(at + 2 * MB, second.length));
    }
    const want = createHash('sha256').update(first).update(second).digest('hex');
    assert.equal(await hash.digest(), want);
  });

  it('fails the digest when hashing failed earlier, while nobody was waiting, instead of hashing part of the data', async () => {
    const path = join(dir, 'present.bin');
    await writeFile(path, randomBytes(2 * MB));
    const hash = new Sha256Thread();
    hash.queueFile(join(dir, 'missing.bin'), 0, 1000);
    await sleep(200);
    hash.queueFile(path, 0, 2 * MB);
    await assert.rejects(hash.digest(), /sha256: .*ENOENT/);
  });

  it('fails when the file is shorter than the bytes it was asked to hash', async () => {
    const path = join(dir, 'short.bin');
    await writeFile(path, randomBytes(100));
    const hash = new Sha256Thread();
    await assert.rejects(hash.addFile(path, 1000), /has 100 bytes, not 1000/);
    await assert.rejects(hash.digest(), /has 100 bytes, not 1000/);
  });
});
