import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodeGguf,
  encodeTinyLlama,
  GgufError,
  parseGguf,
  readGgufFile,
  str,
  strings,
  TINY_LLAMA,
  u32,
} from '@gguf-gateway/gguf';

const dir = mkdtempSync(join(tmpdir(), 'gg-gguf-'));
const fileWith = (name: string, bytes: Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
};

const rejectsWith = (code: string, pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof GgufError, `expected GgufError, got ${String(err)}`);
  assert.equal(err.code, code);
  assert.match(err.message, pattern);
  return true;
};

describe('GGUF reader', () => {
  const tiny = encodeTinyLlama();

  it('reads the metadata of a valid file', async () => {
    const info = await readGgufFile(fileWith('tiny.gguf', tiny));
    assert.equal(info.version, 3);
    assert.equal(info.architecture, 'llama');
    assert.equal(info.name, 'tiny-llama');
    assert.equal(info.contextLength, TINY_LLAMA.contextLength);
    assert.equal(info.blockCount, TINY_LLAMA.blockCount);
    assert.equal(info.embeddingLength, TINY_LLAMA.embeddingLength);
    assert.equal(info.quantization, 'F32');
    assert.equal(info.fileBytes, tiny.length);
    assert.equal(info.tensors.length, 3 + 9 * TINY_LLAMA.blockCount);
    // The vocabulary (over 64 entries) is summarised, not kept.
    assert.deepEqual(info.metadata['tokenizer.ggml.tokens'], { arrayOf: 'STRING', length: 277 });
  });

  it('writes fill-in-the-middle token ids only when asked, keeping the default model as it was', async () => {
    const fim = await readGgufFile(fileWith('tiny-fim.gguf', encodeTinyLlama(42, { fim: true })));
    assert.deepEqual(fim.metadata['tokenizer.ggml.tokens'], { arrayOf: 'STRING', length: 280 });
    assert.deepEqual(
      ['pre', 'suf', 'mid'].map((k) => fim.metadata[`tokenizer.ggml.fim_${k}_token_id`]),
      [277, 278, 279],
    );
    assert.equal(
      (await readGgufFile(fileWith('tiny-plain.gguf', tiny))).metadata['tokenizer.ggml.fim_pre_token_id'],
      undefined,
    );
  });

  it('rejects a file truncated inside its tensor data', async () => {
    const path = fileWith('cut-data.gguf', tiny.subarray(0, tiny.length - 1000));
    await assert.rejects(readGgufFile(path), rejectsWith('truncated', /truncated: its tensors need \d+ bytes/));
  });

  it('rejects a file truncated inside its header', async () => {
    await assert.rejects(
      readGgufFile(fileWith('cut-header.gguf', tiny.subarray(0, 300))),
      rejectsWith('truncated', /header/),
    );
    assert.throws(() => parseGguf(tiny.subarray(0, 20)), rejectsWith('truncated', /header/));
  });

  it('rejects a file that is not GGUF', async () => {
    const html = Buffer.from('<!DOCTYPE html><html>Repository not found</html>');
    await assert.rejects(readGgufFile(fileWith('page.gguf', html)), rejectsWith('not_gguf', /not a GGUF file/));
    await assert.rejects(readGgufFile(fileWith('empty.gguf', Buffer.alloc(0))), rejectsWith('not_gguf', /not a GGUF/));
  });

  it('rejects an unsupported version', async () => {
    const v99 = Buffer.from(tiny);
    v99.writeUInt32LE(99, 4);
    await assert.rejects(readGgufFile(fileWith('v99.gguf', v99)), rejectsWith('unsupported_version', /version 99/));
  });

  it('reads a header larger than its first read (big vocabulary)', async () => {
    const vocab = Array.from({ length: 120_000 }, (_, i) => `token-${i}-${'x'.repeat(8)}`);
    const big = encodeGguf(
      {
        'general.architecture': str('llama'),
        'llama.context_length': u32(8192),
        'tokenizer.ggml.tokens': strings(vocab),
      },
      [],
    );
    assert.ok(big.length > 2 * 1024 * 1024);
    const info = await readGgufFile(fileWith('big-vocab.gguf', big));
    assert.equal(info.contextLength, 8192);
    assert.deepEqual(info.metadata['tokenizer.ggml.tokens'], { arrayOf: 'STRING', length: 120_000 });
  });
});
