import { createWriteStream, type WriteStream } from 'node:fs';
import { fdatasync } from 'node:fs';
import { access, constants, mkdir, open, rename, rm, stat, statfs, truncate } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { readGgufFile, type GgufInfo } from '@gguf-gateway/gguf';

const PARTIAL_DIR = '.partial';

/**
 * The models directory on disk. Files are written only under `.partial/` and move into place with
 * one rename after fsync, so a reader of MODELS_DIR never sees half a model.
 */
export class ModelFilesRepository {
  readonly dir: string;

  constructor(modelsDir: string) {
    this.dir = resolve(modelsDir);
  }

  /** The second line of defence behind request validation: a name resolves inside the directory or not at all. */
  private inside(dir: string, name: string): string {
    const path = resolve(dir, name);
    if (dirname(path) !== dir || basename(path) !== name || name.startsWith('.') || name.includes('\0')) {
      throw new UnrecoverableError(`model name ${JSON.stringify(name)} would land outside MODELS_DIR`);
    }
    return path;
  }

  partialPath(name: string): string {
    return this.inside(join(this.dir, PARTIAL_DIR), name);
  }

  finalPath(name: string): string {
    return this.inside(this.dir, name);
  }

  async prepare(): Promise<void> {
    await mkdir(join(this.dir, PARTIAL_DIR), { recursive: true });
  }

  /** Readiness: null when the worker can write models. */
  async writableProblem(): Promise<string | null> {
    try {
      await this.prepare();
      await access(this.dir, constants.W_OK);
      return null;
    } catch (err) {
      return `models dir ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }

  async sizeOf(path: string): Promise<number | null> {
    try {
      return (await stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async freeBytes(): Promise<number> {
    const fs = await statfs(this.dir);
    return fs.bavail * fs.bsize;
  }

  async truncatePartial(name: string, size: number): Promise<void> {
    await truncate(this.partialPath(name), size);
  }

  /**
   * Starts writing back what `out` has written so far, without blocking it: the fsync before the
   * rename then has little left to flush. A failure here only leaves that work to the final fsync.
   */
  flushInBackground(out: WriteStream): Promise<void> {
    // fs.WriteStream has its descriptor once open; @types/node does not declare it.
    const { fd } = out as unknown as { fd: number | null };
    return new Promise((resolve) => {
      if (typeof fd !== 'number') return resolve();
      fdatasync(fd, () => resolve());
    });
  }

  appendTo(name: string): WriteStream {
    return createWriteStream(this.partialPath(name), { flags: 'a', highWaterMark: 1 << 20 });
  }

  async readHeader(path: string): Promise<GgufInfo> {
    return readGgufFile(path);
  }

  /** fsync the file, rename it into MODELS_DIR, fsync the directory so the rename survives a crash. */
  async promote(name: string): Promise<string> {
    const from = this.partialPath(name);
    const to = this.finalPath(name);
    const file = await open(from, 'r+');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(from, to);
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return to;
  }

  async removePartial(name: string): Promise<void> {
    await rm(this.partialPath(name), { force: true });
  }
}
