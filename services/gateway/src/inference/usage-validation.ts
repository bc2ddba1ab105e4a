import { PG_INTEGER_MAX } from '@gguf-gateway/shared';
import type { UpstreamUsage } from './usage-readers.js';

/**
 * Why a backend's reported usage cannot be charged or recorded as is (null when it can): every
 * count must be a whole number from 0 to Postgres' integer maximum (the usage columns' type; the
 * usage event schema holds the same bound), else one event would stop the metering of every event
 * after it. Such usage is estimated instead.
 */
export function usageProblem(usage: UpstreamUsage): string | null {
  for (const [name, value] of Object.entries(usage)) {
    if (!Number.isInteger(value) || value < 0 || value > PG_INTEGER_MAX) {
      return `${name} ${String(value)} is not a whole number from 0 to ${PG_INTEGER_MAX}`;
    }
  }
  return null;
}
