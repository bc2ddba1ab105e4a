import type { UpstreamUsage } from './usage.tap.js';

/** The usage columns are Postgres `integer`s: a larger count would stop the metering of every event after it. */
export const MAX_TOKEN_COUNT = 2_147_483_647;

/**
 * Why a backend's reported usage cannot be charged or recorded as is (null when it can): every
 * count must be a whole number from 0 to MAX_TOKEN_COUNT. Such usage is estimated instead.
 */
export function usageProblem(usage: UpstreamUsage): string | null {
  for (const [name, value] of Object.entries(usage)) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_TOKEN_COUNT) {
      return `${name} ${String(value)} is not a whole number from 0 to ${MAX_TOKEN_COUNT}`;
    }
  }
  return null;
}
