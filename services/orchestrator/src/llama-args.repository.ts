import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

// The arguments file is the contract with infra/inference/entrypoint.sh: one argument per line,
// so a path with spaces needs no quoting, and `while read -r` rebuilds the list exactly.

export async function writeLlamaArgs(path: string, args: string[]): Promise<void> {
  if (args.some((a) => a.includes('\n'))) throw new Error('a llama-server argument contains a newline');
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  await writeFile(partial, `${args.join('\n')}\n`);
  await rename(partial, path);
}

export async function readLlamaArgs(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((line) => line !== '');
}
