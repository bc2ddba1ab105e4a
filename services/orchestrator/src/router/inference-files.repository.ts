import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { MemoryBudget } from '@gguf-gateway/shared';

// The files the orchestrator writes for llama-server and the gateway. Each is replaced whole by a
// rename, so a reader (the inference container's entrypoint, the router's `GET /models?reload=1`,
// the gateway) sees the old file or the new one, never half of one.

async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.${randomBytes(4).toString('hex')}.partial`;
  try {
    const file = await open(partial, 'w', 0o644);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(partial, path);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

// The arguments file is the contract with infra/inference/entrypoint.sh: one argument per line,
// so a path with spaces needs no quoting, and `while read -r` rebuilds the list exactly.

export async function writeLlamaArgs(path: string, args: string[]): Promise<void> {
  if (args.some((a) => a.includes('\n'))) throw new Error('a llama-server argument contains a newline');
  await writeAtomically(path, `${args.join('\n')}\n`);
}

export async function readLlamaArgs(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((line) => line !== '');
}

/** `llama-server.models.ini`: rendered by models-preset.ts. */
export async function writeModelsPreset(path: string, ini: string): Promise<void> {
  await writeAtomically(path, ini);
}

/** `memory-budget.json`, the gateway's MODELS_MEMORY_FILE. */
export async function writeMemoryBudget(path: string, budget: MemoryBudget): Promise<void> {
  await writeAtomically(path, `${JSON.stringify(budget, null, 2)}\n`);
}
