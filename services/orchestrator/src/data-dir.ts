import { existsSync } from 'node:fs';

/** Where the volume of each platform is mounted, in order of preference. */
export const DATA_DIR_CANDIDATES = ['/runpod-volume', '/workspace'] as const;
export const DEFAULT_DATA_DIR = '/data';

/** DATA_DIR when set; else the RunPod network volume, the Vast.ai / RunPod pod volume, else /data. */
export function resolveDataDir(configured: string | undefined, exists: (path: string) => boolean = existsSync): string {
  return configured ?? DATA_DIR_CANDIDATES.find((dir) => exists(dir)) ?? DEFAULT_DATA_DIR;
}
