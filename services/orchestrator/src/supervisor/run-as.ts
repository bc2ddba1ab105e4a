import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

/** The user the supervised processes run as when the supervisor itself starts as root. */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** RUN_AS_USER's ids when we are root; undefined otherwise (a non-root supervisor's children are already non-root). */
export function resolveRunAs(name: string | undefined): RunAs | undefined {
  if (!name || userInfo().uid !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
    return { name, uid: id('-u'), gid: id('-g') };
  } catch (err) {
    throw new Error(`RUN_AS_USER=${name}: no such user in this image (create it, or unset RUN_AS_USER)`, {
      cause: err,
    });
  }
}

/**
 * Hands what the services write to the service user: a volume mounted by the platform (RunPod's
 * /workspace) is root's, and so is what an older image running everything as root left there.
 * `trees` are owned recursively (their files are the services' own); `paths` only themselves.
 */
export function handOver(runAs: RunAs, paths: string[], trees: string[]): void {
  for (const path of paths) if (existsSync(path)) chownSync(path, runAs.uid, runAs.gid);
  for (const tree of trees) {
    if (!existsSync(tree)) continue;
    chownSync(tree, runAs.uid, runAs.gid);
    for (const entry of readdirSync(tree, { recursive: true })) {
      chownSync(join(tree, String(entry)), runAs.uid, runAs.gid);
    }
  }
}
