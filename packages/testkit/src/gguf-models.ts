import { writeFile } from 'node:fs/promises';
import { str, u32, writeGguf } from '@gguf-gateway/gguf';

/**
 * Writes a valid GGUF of about `bytes` bytes: llama metadata and one f32 tensor of pseudo-random
 * values (different per seed, so two test models never share a sha256).
 */
export async function writeTestGguf(path: string, bytes: number, seed = 1): Promise<void> {
  const data = new Float32Array(Math.max(Math.floor(bytes / 4), 8));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 4294967296;
  }
  await writeGguf(
    path,
    {
      'general.architecture': str('llama'),
      'general.name': str(`test-model-${seed}`),
      'general.file_type': u32(0),
      'llama.context_length': u32(4096),
      'llama.block_count': u32(1),
    },
    [{ name: 'weights', dims: [data.length], data }],
  );
}

/** Bytes that are not a GGUF file, served as if they were one. */
export async function writeNotGguf(path: string, bytes = 64 * 1024): Promise<void> {
  await writeFile(path, Buffer.alloc(bytes, 'not a model '));
}
