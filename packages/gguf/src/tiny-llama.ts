import { writeFile } from 'node:fs/promises';
import { encodeGguf, f32, floats, ints, str, strings, u32, type F32Tensor, type MetadataValue } from './writer.js';

/**
 * A tiny llama-architecture model with random weights: about half a megabyte, loads in
 * llama-server and streams real (gibberish) tokens. Its byte-fallback vocabulary makes it emit
 * raw bytes, so multi-byte UTF-8 characters get split across tokens, as with real models.
 */
export const TINY_LLAMA = {
  embeddingLength: 64,
  blockCount: 2,
  feedForwardLength: 128,
  headCount: 4,
  headCountKv: 4,
  contextLength: 2048,
} as const;

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
const WORDS = [
  '▁',
  '▁the',
  '▁a',
  '▁hello',
  '▁world',
  '▁model',
  '▁token',
  'e',
  't',
  'a',
  'o',
  'n',
  's',
  'é',
  '€',
  '日本',
];

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
  control: number[];
}

/** Fill-in-the-middle control tokens (Qwen's names), for llama-server's /infill. */
const FIM_TOKENS = ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'] as const;

export interface TinyLlamaOptions {
  /** Add fill-in-the-middle tokens, so that llama-server serves /infill with it. */
  fim?: boolean;
}

function buildVocab(fim: boolean): Vocab {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const add = (token: string, type: number, score = 0) => {
    tokens.push(token);
    types.push(type);
    scores.push(score);
    return tokens.length - 1;
  };
  const control = [add('<unk>', TOKEN_TYPE.unknown), add('<s>', TOKEN_TYPE.control), add('</s>', TOKEN_TYPE.control)];
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TOKEN_TYPE.byte);
  WORDS.forEach((word, i) => add(word, TOKEN_TYPE.normal, -i));
  control.push(add('<|im_start|>', TOKEN_TYPE.control), add('<|im_end|>', TOKEN_TYPE.control));
  // Last, so that a model without them has the same vocabulary (and weights) as before.
  if (fim) control.push(...FIM_TOKENS.map((t) => add(t, TOKEN_TYPE.control)));
  return { tokens, scores, types, control };
}

/** Deterministic PRNG (mulberry32), so the same seed always writes the same model. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function encodeTinyLlama(seed = 42, options: TinyLlamaOptions = {}): Buffer {
  const { embeddingLength: n, blockCount, feedForwardLength: ff, headCount, headCountKv, contextLength } = TINY_LLAMA;
  const vocab = buildVocab(options.fim === true);
  const rand = random(seed);
  // Uniform weights scaled by fan-in keep activations finite through the layers.
  const matrix = (name: string, cols: number, rows: number): F32Tensor => {
    const scale = 1 / Math.sqrt(cols);
    const data = new Float32Array(cols * rows).map(() => (rand() * 2 - 1) * scale);
    return { name, dims: [cols, rows], data };
  };
  const ones = (name: string): F32Tensor => ({ name, dims: [n], data: new Float32Array(n).fill(1) });

  const output = matrix('output.weight', n, vocab.tokens.length);
  // Control tokens get zero logits, so greedy decoding never ends a reply early or emits markup.
  for (const id of vocab.control) output.data.fill(0, id * n, (id + 1) * n);

  const tensors: F32Tensor[] = [
    matrix('token_embd.weight', n, vocab.tokens.length),
    ones('output_norm.weight'),
    output,
  ];
  const kvDim = (n / headCount) * headCountKv;
  for (let b = 0; b < blockCount; b++) {
    tensors.push(
      ones(`blk.${b}.attn_norm.weight`),
      matrix(`blk.${b}.attn_q.weight`, n, n),
      matrix(`blk.${b}.attn_k.weight`, n, kvDim),
      matrix(`blk.${b}.attn_v.weight`, n, kvDim),
      matrix(`blk.${b}.attn_output.weight`, n, n),
      ones(`blk.${b}.ffn_norm.weight`),
      matrix(`blk.${b}.ffn_gate.weight`, n, ff),
      matrix(`blk.${b}.ffn_up.weight`, n, ff),
      matrix(`blk.${b}.ffn_down.weight`, ff, n),
    );
  }

  const metadata: Record<string, MetadataValue> = {
    'general.architecture': str('llama'),
    'general.name': str('tiny-llama'),
    'general.file_type': u32(0),
    'llama.context_length': u32(contextLength),
    'llama.embedding_length': u32(n),
    'llama.block_count': u32(blockCount),
    'llama.feed_forward_length': u32(ff),
    'llama.attention.head_count': u32(headCount),
    'llama.attention.head_count_kv': u32(headCountKv),
    'llama.rope.dimension_count': u32(n / headCount),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
    'llama.vocab_size': u32(vocab.tokens.length),
    'tokenizer.ggml.model': str('llama'),
    'tokenizer.ggml.tokens': strings(vocab.tokens),
    'tokenizer.ggml.scores': floats(vocab.scores),
    'tokenizer.ggml.token_type': ints(vocab.types),
    'tokenizer.ggml.unknown_token_id': u32(0),
    'tokenizer.ggml.bos_token_id': u32(1),
    'tokenizer.ggml.eos_token_id': u32(2),
    'tokenizer.chat_template': str(CHATML_TEMPLATE),
  };
  if (options.fim) {
    const id = (token: string) => u32(vocab.tokens.indexOf(token));
    metadata['tokenizer.ggml.fim_pre_token_id'] = id(FIM_TOKENS[0]);
    metadata['tokenizer.ggml.fim_suf_token_id'] = id(FIM_TOKENS[1]);
    metadata['tokenizer.ggml.fim_mid_token_id'] = id(FIM_TOKENS[2]);
  }
  return encodeGguf(metadata, tensors);
}

export async function writeTinyLlama(path: string, seed = 42, options: TinyLlamaOptions = {}): Promise<void> {
  await writeFile(path, encodeTinyLlama(seed, options));
}
