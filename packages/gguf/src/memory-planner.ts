import type { GgufValue } from './reader.js';

// How much memory llama-server needs to serve one model, from its GGUF header alone, so that the
// gateway can decide what fits before loading anything:
//   weights   the tensor data (the file's size: GGUF stores tensors as they are loaded)
//   KV cache  K and V, f16, for every layer and every token of the context. llama-server allocates
//             ctx-size tokens in total and shares them among its parallel slots (each slot gets
//             ctx-size / parallel), so parallel does not multiply it.
//   overhead  the compute buffer of one micro-batch (attention scores without flash attention,
//             activations, logits), the per-slot output buffer, the runtime, and a safety margin.

export interface MemoryPlanOptions {
  /** llama-server's --ctx-size; 0 or absent: the model's trained context length. */
  ctxSize?: number;
  /** llama-server's --parallel (slots). */
  parallel?: number;
  /** --n-gpu-layers: with fewer layers than the model has, only that share is counted (the device's part). */
  gpuLayers?: number;
}

export interface MemoryEstimate {
  weightsBytes: number;
  kvCacheBytes: number;
  overheadBytes: number;
  totalBytes: number;
  /** The context the KV cache was sized for. */
  ctxSize: number;
}

const MIB = 1024 * 1024;
/** f16 K and V. */
const KV_BYTES_PER_VALUE = 2;
/** llama-server's default micro-batch (--ubatch-size). */
const UBATCH = 512;
/** CUDA/CPU runtime, scratch and the server itself. */
const RUNTIME_BYTES = 64 * MIB;
/** Allocator slack and fragmentation on top of everything else. */
const SAFETY_MARGIN = 0.1;
/** When the header does not say (an unusual architecture): a common trained context. */
const FALLBACK_CONTEXT = 4096;

function numberOf(value: GgufValue | undefined): number | null {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  // Per-layer values (some architectures vary head counts by layer): plan for the largest.
  if (Array.isArray(value)) {
    const numbers = value.map((v) => (typeof v === 'bigint' ? Number(v) : v)).filter((v) => typeof v === 'number');
    return numbers.length > 0 ? Math.max(...numbers) : null;
  }
  return null;
}

function vocabularySize(metadata: Record<string, GgufValue>, arch: string): number {
  const declared = numberOf(metadata[`${arch}.vocab_size`]);
  if (declared) return declared;
  const tokens = metadata['tokenizer.ggml.tokens'];
  if (Array.isArray(tokens)) return tokens.length;
  if (tokens && typeof tokens === 'object') return tokens.length;
  return 32_000;
}

/** What serving the model takes, in bytes, with the options llama-server will be started with. */
export function estimateModelMemory(
  metadata: Record<string, GgufValue>,
  fileBytes: number,
  options: MemoryPlanOptions = {},
): MemoryEstimate {
  const arch = typeof metadata['general.architecture'] === 'string' ? metadata['general.architecture'] : 'llama';
  const key = (name: string) => numberOf(metadata[`${arch}.${name}`]);
  const layers = key('block_count') ?? 0;
  const embedding = key('embedding_length') ?? 0;
  const heads = key('attention.head_count') ?? 1;
  const kvHeads = key('attention.head_count_kv') ?? heads;
  const headDim = heads > 0 ? embedding / heads : 0;
  const keyDim = key('attention.key_length') ?? headDim;
  const valueDim = key('attention.value_length') ?? headDim;
  const ctxSize =
    options.ctxSize && options.ctxSize > 0 ? options.ctxSize : (key('context_length') ?? FALLBACK_CONTEXT);
  const parallel = Math.max(1, options.parallel ?? 1);
  const vocab = vocabularySize(metadata, arch);

  // Offloading n of L layers puts about n/(L+1) of the weights (the output layer is the +1) on the device.
  // A negative count (-1) is llama.cpp's "all" (or "auto").
  const gpuLayers = options.gpuLayers !== undefined && options.gpuLayers >= 0 ? options.gpuLayers : layers + 1;
  const share = layers > 0 && gpuLayers < layers + 1 ? gpuLayers / (layers + 1) : 1;
  const weightsBytes = Math.ceil(fileBytes * share);
  const kvLayers = Math.min(layers, gpuLayers);
  const kvCacheBytes = kvLayers * ctxSize * kvHeads * (keyDim + valueDim) * KV_BYTES_PER_VALUE;
  // One micro-batch: attention scores (f32, every head against the whole context), activations and logits.
  const computeBytes = UBATCH * 4 * (Math.min(ctxSize, 32_768) * heads + 8 * embedding + vocab);
  const outputBytes = parallel * vocab * 4;
  const base = weightsBytes + kvCacheBytes + computeBytes + outputBytes + RUNTIME_BYTES;
  const overheadBytes = computeBytes + outputBytes + RUNTIME_BYTES + Math.ceil(base * SAFETY_MARGIN);
  return {
    weightsBytes,
    kvCacheBytes,
    overheadBytes,
    totalBytes: weightsBytes + kvCacheBytes + overheadBytes,
    ctxSize,
  };
}
