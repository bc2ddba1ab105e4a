import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where the volume of each platform is mounted, in order of preference. */
export const DATA_DIR_CANDIDATES = ['/runpod-volume', '/workspace'] as const;
export const DEFAULT_DATA_DIR = '/data';

/** DATA_DIR when set; else the RunPod network volume, the Vast.ai / RunPod pod volume, else /data. */
export function resolveDataDir(configured: string | undefined, exists: (path: string) => boolean = existsSync): string {
  return configured ?? DATA_DIR_CANDIDATES.find((dir) => exists(dir)) ?? DEFAULT_DATA_DIR;
}

/**
 * The keys file when API_KEYS_FILE is unset: `$DATA_DIR/api_keys`, or the seed project's
 * `$DATA_DIR/api_keys.txt` when only that one is on the volume.
 */
export function defaultKeysFile(dataDir: string, exists: (path: string) => boolean = existsSync): string {
  const ours = join(dataDir, 'api_keys');
  const seed = join(dataDir, 'api_keys.txt');
  return !exists(ours) && exists(seed) ? seed : ours;
}
