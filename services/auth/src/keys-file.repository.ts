import { readFile } from 'node:fs/promises';

/** The keys file on disk (mounted read-only): its text, or the reason it cannot be read. */
export class KeysFileRepository {
  constructor(readonly path: string) {}

  async read(): Promise<{ text: string } | { problem: string }> {
    try {
      return { text: await readFile(this.path, 'utf8') };
    } catch (err) {
      return { problem: `cannot read ${this.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
  }
}
