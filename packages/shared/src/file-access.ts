import { statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

/**
 * Why a file could not be read, in terms a deployer can act on: for a permission error, the
 * file's owner and mode and the uid that needs to read it (a container's user is rarely the
 * host user who wrote the file).
 */
export function unreadableReason(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  if (code !== 'EACCES') return code;
  try {
    const { uid, gid, mode } = statSync(path);
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    return (
      `EACCES: owned by ${uid}:${gid} with mode ${octal}, and this process runs as uid ${process.getuid?.() ?? '?'}; ` +
      'make it readable by that uid (chmod 644, or chown it)'
    );
  } catch {
    return `${code}: a folder on its path is not searchable by uid ${process.getuid?.() ?? '?'}`;
  }
}

/** The names in a folder; none while it does not exist (yet). Other failures are thrown. */
export async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
