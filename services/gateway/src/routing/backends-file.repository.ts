import { readFile } from 'node:fs/promises';
import { parseBackendsFile, type BackendsFile } from '@gguf-gateway/shared';

export async function readBackendsFile(path: string): Promise<BackendsFile> {
  return parseBackendsFile(await readFile(path, 'utf8'));
}
