import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The keys file's text, or '' when it does not exist yet. */
export async function readKeysFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** The mode and owner of the file being replaced, or null when it does not exist yet. */
async function ownershipOf(path: string): Promise<{ mode: number; uid: number; gid: number } | null> {
  try {
    const { mode, uid, gid } = await stat(path);
    return { mode: mode & 0o7777, uid, gid };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Replaces the keys file in one step (temp file + fsync + rename, then fsync of the folder): a
 * reader, the auth service included, sees the old file or the new one, never half of one. A new
 * file is mode 0644: it holds only hashes, and the services read it as their own user (uid 1000 in
 * the images) through a bind mount. A replaced one keeps its mode and owner, so whoever could read
 * it still can.
 */
export async function writeKeysFile(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const previous = await ownershipOf(path);
  const file = await open(temp, 'w', 0o600);
  try {
    if (previous) {
      const created = await file.stat();
      if (created.uid !== previous.uid || created.gid !== previous.gid) {
        await file.chown(previous.uid, previous.gid).catch((err: NodeJS.ErrnoException) => {
          throw new Error(
            `cannot give the new ${path} its owner ${previous.uid}:${previous.gid} (${err.code}): run as root or as that user`,
          );
        });
      }
    }
    await file.chmod(previous?.mode ?? 0o644);
    await file.writeFile(text, 'utf8');
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(temp, { force: true });
    throw err;
  }
  await file.close();
  await rename(temp, path);
  const folder = await open(dirname(path), 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
