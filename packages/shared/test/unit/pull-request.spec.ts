import assert from 'node:assert/strict';
import { InvalidPullError, parsePullJobData, pullFiles, redactedSource, redactUrl } from '../../src/pull-request.js';

describe('pull requests', () => {
  it('accepts a repository file in a folder and lands it under its own file name', () => {
    const data = parsePullJobData({
      source: { repo: 'acme/m-GGUF', file: 'Q4_K_M/m.Q4_K_M.gguf', revision: 'refs/pr/1' },
    });
    assert.deepEqual(pullFiles(data), [{ name: 'm.Q4_K_M.gguf', repoFile: 'Q4_K_M/m.Q4_K_M.gguf' }]);
  });

  it('expands a split GGUF into every part, whichever part was named', () => {
    const data = parsePullJobData({ source: { repo: 'acme/big', file: 'big-00002-of-00003.gguf' } });
    assert.deepEqual(
      pullFiles(data).map((f) => f.name),
      ['big-00001-of-00003.gguf', 'big-00002-of-00003.gguf', 'big-00003-of-00003.gguf'],
    );
  });

  it('names a URL pull after the last segment of its path, unless given a name', () => {
    assert.equal(
      pullFiles(parsePullJobData({ source: { url: 'https://hf.co/a/b/resolve/main/x.gguf?download=1' } }))[0]!.name,
      'x.gguf',
    );
    assert.equal(
      pullFiles(parsePullJobData({ source: { url: 'https://hf.co/a' }, name: 'y.gguf' }))[0]!.name,
      'y.gguf',
    );
  });

  it('lower-cases the sha256 and refuses one for a split GGUF', () => {
    assert.equal(
      parsePullJobData({ source: { repo: 'a/b', file: 'c.gguf' }, sha256: 'AB'.repeat(32) }).sha256,
      'ab'.repeat(32),
    );
    assert.throws(
      () => parsePullJobData({ source: { repo: 'a/b', file: 'c-00001-of-00002.gguf' }, sha256: 'ab'.repeat(32) }),
      InvalidPullError,
    );
  });

  it('refuses names that could leave the models directory, quoting them safely', () => {
    for (const name of ['..', '.hidden', 'a/b', 'a\\b', '/abs', 'a\0b', ' spaced']) {
      assert.throws(
        () => parsePullJobData({ source: { repo: 'a/b', file: 'c.gguf' }, name }),
        (err: InvalidPullError) => err.param === 'name' && !err.message.includes('\0'),
        JSON.stringify(name),
      );
    }
  });

  it('refuses a URL with a malformed percent escape and a split part that cannot exist as bad input', () => {
    const bad: [unknown, string][] = [
      [{ url: 'https://example.com/models/bad%E0%A4%A.gguf' }, 'source.url'],
      [{ url: 'https://example.com/models/%ZZ' }, 'source.url'],
      [{ repo: 'a/b', file: 'm-00001-of-00000.gguf' }, 'source.file'],
      [{ repo: 'a/b', file: 'm-00003-of-00002.gguf' }, 'source.file'],
      [{ repo: 'a/b', file: 'm-00000-of-00002.gguf' }, 'source.file'],
    ];
    for (const [source, param] of bad) {
      assert.throws(
        () => parsePullJobData({ source }),
        (err: unknown) => err instanceof InvalidPullError && err.param === param,
        JSON.stringify(source),
      );
    }
  });

  it('redacts every query value of a URL source for logs and storage, and leaves a repository source as it is', () => {
    const url = 'https://cdn.example/m.gguf?X-Amz-Signature=abc&X-Amz-Signature=def&download=1';
    assert.deepEqual(redactedSource({ url }), {
      url: 'https://cdn.example/m.gguf?X-Amz-Signature=REDACTED&download=REDACTED',
    });
    assert.equal(redactUrl('https://cdn.example/m.gguf'), 'https://cdn.example/m.gguf');
    assert.deepEqual(redactedSource({ repo: 'a/b', file: 'c.gguf' }), { repo: 'a/b', file: 'c.gguf' });
  });
});
