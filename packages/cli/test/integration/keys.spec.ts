import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseKeysFile, sha256Hex } from '@gguf-gateway/shared';
import { repoRoot } from '@gguf-gateway/testkit';
import { runKeys } from '../../src/commands/keys.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

describe('gguf-gateway keys', () => {
  let dir: string;
  let file: string;

  const keys = async (...args: string[]): Promise<Run> => {
    let out = '';
    let err = '';
    const code = await runKeys(args, { out: (t) => (out += t), err: (t) => (err += t), env: { API_KEYS_FILE: file } });
    return { code, out, err };
  };
  const fileText = () => readFile(file, 'utf8');
  const mode = async () => (await stat(file)).mode & 0o777;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gg-cli-keys-'));
    file = join(dir, 'api_keys');
  });

  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("creates a key: prints it once and writes only its hash, in a file the services' user (uid 1000) can read", async () => {
    const run = await keys(
      'create',
      'alice',
      '--rpm',
      '60',
      '--models',
      'tiny*|qwen2',
      '--expires',
      '2030-01-01T00:00:00+01:00',
    );
    assert.equal(run.code, 0, run.err);
    const secret = run.out.trim();
    assert.match(secret, /^sk-gg-[A-Za-z0-9_-]{32}$/);
    const text = await fileText();
    assert.ok(!text.includes(secret), 'the plaintext secret is not on disk');
    assert.equal(await mode(), 0o644);
    const { keys: loaded, errors } = parseKeysFile(text);
    assert.deepEqual(errors, []);
    assert.equal(loaded[0]!.secretSha256, sha256Hex(secret));
    assert.equal(loaded[0]!.limits.rpm, 60);
    assert.deepEqual(loaded[0]!.models, ['tiny*', 'qwen2']);
    assert.equal(loaded[0]!.expiresAt!.toISOString(), '2029-12-31T23:00:00.000Z');
  });

  it('refuses a second key with the same id and an invalid option, leaving the file alone', async () => {
    await keys('create', 'alice');
    const before = await fileText();
    const twice = await keys('create', 'alice');
    assert.equal(twice.code, 1);
    assert.match(twice.err, /key 'alice' already exists/);
    const bad = await keys('create', 'bob', '--rpm', 'lots');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /rpm must be a whole number/);
    assert.equal(await fileText(), before);
  });

  it('lists keys with their limits and never a secret or its hash', async () => {
    const secret = (await keys('create', 'alice', '--tpm', '1000', '--scope', 'admin')).out.trim();
    await keys('create', 'bob', '--daily-tokens', '5000');
    const run = await keys('list');
    assert.equal(run.code, 0);
    const lines = run.out.trim().split('\n');
    assert.match(lines[0]!, /^id\s+rpm\s+tpm/);
    assert.match(lines[1]!, /^alice\s+-\s+1000\s.*admin/);
    assert.match(lines[2]!, /^bob\s.*5000/);
    assert.ok(!run.out.includes(secret) && !run.out.includes(sha256Hex(secret)));
  });

  it('revokes a key and keeps every other line, comments included', async () => {
    await writeFile(file, '# team keys\n', { mode: 0o600 });
    await keys('create', 'alice');
    await keys('create', 'bob');
    assert.equal((await keys('revoke', 'alice')).code, 0);
    const text = await fileText();
    assert.ok(text.startsWith('# team keys\n'));
    assert.deepEqual(
      parseKeysFile(text).keys.map((k) => k.id),
      ['bob'],
    );
    assert.equal(await mode(), 0o600);
    assert.equal((await keys('revoke', 'alice')).code, 1);
  });

  it("keeps an existing file's mode and owner, so the auth service's user can still read it", async () => {
    // As root the file gets another owner, as the auth container's user would be; otherwise our own.
    const owner =
      process.getuid!() === 0 ? { uid: 4321, gid: 8765 } : { uid: process.getuid!(), gid: process.getgid!() };
    await writeFile(file, '# team keys\n', { mode: 0o640 });
    await chown(file, owner.uid, owner.gid);
    await chmod(file, 0o640);
    assert.equal((await keys('create', 'alice')).code, 0);
    const after = await stat(file);
    assert.equal(after.mode & 0o777, 0o640);
    assert.deepEqual({ uid: after.uid, gid: after.gid }, owner);
    assert.ok((await fileText()).startsWith('# team keys\n'));
  });

  it('rotates a key: a new secret with the same limits, the old one gone', async () => {
    const old = (await keys('create', 'alice', '--concurrency', '4')).out.trim();
    const run = await keys('rotate', 'alice');
    assert.equal(run.code, 0);
    const fresh = run.out.trim();
    assert.notEqual(fresh, old);
    const [alice] = parseKeysFile(await fileText()).keys;
    assert.equal(alice!.secretSha256, sha256Hex(fresh));
    assert.equal(alice!.limits.concurrency, 4);
    assert.equal(await mode(), 0o644);
  });

  it('runs from the built command line with the file from --file', async () => {
    await keys('create', 'alice');
    const { stdout } = await promisify(execFile)('node', [
      join(repoRoot, 'packages/cli/dist/main.js'),
      'keys',
      'list',
      '--file',
      file,
    ]);
    assert.match(stdout, /^alice/m);
  });
});
