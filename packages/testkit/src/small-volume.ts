import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SmallVolume {
  /** A directory on the volume (not its mount point, so it can be removed like any directory). */
  dir: string;
  unmount(): Promise<void>;
}

/**
 * A real filesystem of `bytes` (tmpfs), to fill up for real: writes fail with ENOSPC as on a full
 * disk. Needs root, or passwordless sudo (GitHub's runners have it); null when neither mounts.
 */
export async function mountSmallVolume(bytes: number): Promise<SmallVolume | null> {
  const mountPoint = await mkdtemp(join(tmpdir(), 'gg-volume-'));
  const asRoot = process.getuid?.() === 0;
  const sudo = (args: string[]) => (asRoot ? run(args[0]!, args.slice(1)) : run('sudo', ['-n', ...args]));
  try {
    await sudo(['mount', '-t', 'tmpfs', '-o', `size=${bytes},mode=1777`, 'tmpfs', mountPoint]);
  } catch {
    await rm(mountPoint, { recursive: true, force: true });
    return null;
  }
  const dir = join(mountPoint, 'models');
  await mkdir(dir);
  return {
    dir,
    async unmount() {
      await sudo(['umount', mountPoint]);
      await rm(mountPoint, { recursive: true, force: true });
    },
  };
}
