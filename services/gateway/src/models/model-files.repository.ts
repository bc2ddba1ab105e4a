import { existsSync } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { readGgufFile, type GgufInfo } from '@gguf-gateway/gguf';
import { modelNameOfFile, namesIn } from '@gguf-gateway/shared';

// MODELS_DIR on disk, as the catalog sees it: the only code of the gateway that reads or removes
// model files. Pulls write under `.partial/` and rename into place, so what is listed is whole.

/** One model's files: a single .gguf, or every part of a split model. */
export interface ModelFiles {
  /** The file name without `.gguf`, without the `-00001-of-0000N` of a split model. */
  name: string;
  /** The file llama-server's router names it by (without .gguf): part 1's for a split model. */
  routerId: string;
  /** Part 1 (or the only file) first. */
  paths: string[];
  bytes: number;
  /** Changes when a file is replaced: the cached header is read again. */
  version: string;
}

const PARTIAL_DIR = '.partial';
/** Part 1 of a split model, the part llama.cpp opens it by. */
const FIRST_PART = /-00001-of-\d{5}$/;
// Companion files the router never serves on their own: projectors and speculative draft models.
const COMPANION = /mmproj|^(mtp|dspark|dflash)-/;

export class ModelFilesRepository {
  constructor(readonly dir: string) {}

  /** Every model in the folder (top level, not `.partial/`), by name. */
  async scan(): Promise<ModelFiles[]> {
    const names = await namesIn(this.dir);
    const ggufs = names.filter((n) => n.endsWith('.gguf') && !n.startsWith('.') && !COMPANION.test(n)).sort();
    const stats = await Promise.all(
      ggufs.map(async (file) => {
        const info = await stat(join(this.dir, file)).catch(() => null);
        return info?.isFile() ? { file, size: info.size, mtimeMs: info.mtimeMs } : null;
      }),
    );
    const models = new Map<string, ModelFiles>();
    for (const entry of stats) {
      if (!entry) continue;
      const base = entry.file.slice(0, -'.gguf'.length);
      // The same rule that names a pulled model (`gguf-gateway pull` prints it).
      const name = modelNameOfFile(entry.file);
      const model = models.get(name) ?? { name, routerId: base, paths: [], bytes: 0, version: '' };
      const path = join(this.dir, entry.file);
      // Part 1 leads: the router and llama.cpp open a split model by its first part.
      if (FIRST_PART.test(base)) {
        model.routerId = base;
        model.paths.unshift(path);
      } else {
        model.paths.push(path);
      }
      model.bytes += entry.size;
      model.version += `${entry.file}:${entry.size}:${entry.mtimeMs};`;
      models.set(name, model);
    }
    return [...models.values()];
  }

  /** The model file at an absolute path (a backends-file entry's `local:` outside MODELS_DIR). */
  async file(path: string): Promise<{ bytes: number; version: string } | null> {
    const info = await stat(path).catch(() => null);
    return info?.isFile() ? { bytes: info.size, version: `${path}:${info.size}:${info.mtimeMs}` } : null;
  }

  readHeader(path: string): Promise<GgufInfo> {
    return readGgufFile(path);
  }

  /** Whether a pull is writing this file now (its partial file exists). */
  beingPulled(fileName: string): boolean {
    return existsSync(join(this.dir, PARTIAL_DIR, fileName));
  }

  /**
   * Whether the file is a model file of MODELS_DIR that may be deleted: a `.gguf` inside it (after
   * `..` is resolved: a backends-file `local:` may climb out), never under a dot folder (`.partial/`).
   */
  holds(path: string): boolean {
    const inside = relative(resolve(this.dir), resolve(path));
    if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) return false;
    return inside.endsWith('.gguf') && !inside.split(sep).some((part) => part.startsWith('.'));
  }

  async remove(paths: readonly string[]): Promise<void> {
    const outside = paths.find((path) => !this.holds(path));
    if (outside !== undefined) throw new Error(`${outside} is outside MODELS_DIR or not a model file: not removed`);
    for (const path of paths)
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
  }
}
