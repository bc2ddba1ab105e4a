import assert from 'node:assert/strict';
import { encodeTinyLlama, estimateModelMemory, parseGguf, TINY_LLAMA, type GgufValue } from '@gguf-gateway/gguf';

const MIB = 1024 * 1024;

// The header of a real 7B model, as read from mistral-7b-instruct-v0.2.Q4_K_M.gguf (TheBloke): a
// grouped-query model (8 KV heads for 32 query heads) with a 32k trained context.
const MISTRAL_7B: Record<string, GgufValue> = {
  'general.architecture': 'llama',
  'general.name': 'mistralai_mistral-7b-instruct-v0.2',
  'general.file_type': 15,
  'llama.context_length': 32768,
  'llama.embedding_length': 4096,
  'llama.block_count': 32,
  'llama.feed_forward_length': 14336,
  'llama.rope.dimension_count': 128,
  'llama.attention.head_count': 32,
  'llama.attention.head_count_kv': 8,
  'llama.attention.layer_norm_rms_epsilon': 1e-5,
  'llama.rope.freq_base': 1000000,
  'tokenizer.ggml.tokens': { arrayOf: 'string', length: 32000 },
};
const MISTRAL_7B_FILE_BYTES = 4_368_439_584;

// Llama 2 7B (llama-2-7b-chat.Q4_K_M.gguf): every head has its own K and V.
const LLAMA2_7B: Record<string, GgufValue> = {
  ...MISTRAL_7B,
  'llama.context_length': 4096,
  'llama.feed_forward_length': 11008,
  'llama.attention.head_count_kv': 32,
};
const LLAMA2_7B_FILE_BYTES = 4_081_004_224;

describe('memory planner', () => {
  it('sizes the KV cache of a grouped-query 7B model as llama.cpp allocates it (512 MiB at 4096 tokens)', () => {
    const plan = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES, { ctxSize: 4096, parallel: 1 });
    // 2 (K, V) x 32 layers x 4096 tokens x 8 KV heads x 128 dims x 2 bytes (f16)
    assert.equal(plan.kvCacheBytes, 512 * MIB);
    assert.equal(plan.weightsBytes, MISTRAL_7B_FILE_BYTES);
    assert.equal(plan.totalBytes, plan.weightsBytes + plan.kvCacheBytes + plan.overheadBytes);
    // A 7B Q4_K_M at 4k context fits an 8 GiB card, and not a 4 GiB one.
    assert.ok(plan.totalBytes > 4.5 * 1024 * MIB && plan.totalBytes < 8 * 1024 * MIB, `${plan.totalBytes}`);
  });

  it('uses the trained context when no ctx-size is given: 4 GiB of KV for 32k tokens', () => {
    const plan = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES);
    assert.equal(plan.ctxSize, 32768);
    assert.equal(plan.kvCacheBytes, 4096 * MIB);
  });

  it('gives a model without grouped-query attention four times the KV cache (2 GiB at 4096 tokens)', () => {
    const plan = estimateModelMemory(LLAMA2_7B, LLAMA2_7B_FILE_BYTES, { ctxSize: 4096 });
    assert.equal(plan.kvCacheBytes, 2048 * MIB);
  });

  it('shares the context among parallel slots: more slots add output buffers, not KV cache', () => {
    const one = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES, { ctxSize: 8192, parallel: 1 });
    const four = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES, { ctxSize: 8192, parallel: 4 });
    assert.equal(four.kvCacheBytes, one.kvCacheBytes);
    assert.ok(four.overheadBytes > one.overheadBytes);
    assert.ok(four.overheadBytes - one.overheadBytes < 2 * MIB);
  });

  it('counts only the offloaded share with fewer GPU layers than the model has', () => {
    const all = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES, { ctxSize: 4096, gpuLayers: 99 });
    const half = estimateModelMemory(MISTRAL_7B, MISTRAL_7B_FILE_BYTES, { ctxSize: 4096, gpuLayers: 16 });
    assert.equal(all.weightsBytes, MISTRAL_7B_FILE_BYTES);
    assert.equal(half.kvCacheBytes, all.kvCacheBytes / 2);
    assert.ok(half.weightsBytes < all.weightsBytes / 2);
  });

  it('plans the tiny test model from its own header: a few MiB, KV from its 2 layers and 4 heads', () => {
    const bytes = encodeTinyLlama(1);
    const info = parseGguf(bytes);
    const plan = estimateModelMemory(info.metadata, bytes.length, { ctxSize: 2048, parallel: 2 });
    const headDim = TINY_LLAMA.embeddingLength / 4;
    assert.equal(plan.kvCacheBytes, 2 * TINY_LLAMA.blockCount * 2048 * TINY_LLAMA.headCountKv * headDim * 2);
    assert.equal(plan.weightsBytes, bytes.length);
    assert.ok(plan.totalBytes < 128 * MIB, `${plan.totalBytes}`);
  });
});
