import { readFile } from 'node:fs/promises';
import { parseBackendsFile, type BackendsFile } from './backends-file.parser.js';

export async function readBackendsFile(path: string): Promise<BackendsFile> {
  return parseBackendsFile(await readFile(path, 'utf8'));
}
