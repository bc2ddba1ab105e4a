import type { KeyLimits } from '@gguf-gateway/shared';

// Limits charged at settle, after a request has run, and checked at authorize: token rates, daily
// quotas and USD budgets. One row each; authorize and settle loop over them.

// Budgets are counted in nano-USD: whole points, and a 10-token request still costs something.
export const NANO_USD = 1e9;
const DAY_MS = 86_400_000;

export interface ChargedLimit {
  /** Redis counter name (under REDIS_KEY_PREFIX). */
  counter: string;
  /** The key's limit in this counter's points, or null when the key has none. */
  limit(limits: KeyLimits): number | null;
  /** Which window a charge lands in: calendar windows are named by their UTC day or month. */
  bucket(keyId: string, now: Date): string;
  /** How long Redis keeps a window's counter; its name already ends it for calendar windows. */
  windowSec: number;
  /** What one settled request adds to this counter. */
  points(usage: { tokens: number; nanoUsd: number }): number;
  /** The 429 once the limit is spent. */
  code: 'rate_limit_exceeded' | 'quota_exceeded' | 'budget_exceeded';
  message(keyId: string, limits: KeyLimits): string;
  /** Until the window resets; null when the counter's own TTL says it (rolling windows). */
  msUntilReset(now: Date): number | null;
}

const utcDay = (now: Date) => now.toISOString().slice(0, 10);
const utcMonth = (now: Date) => now.toISOString().slice(0, 7);
const nano = (usd: number | null) => (usd === null ? null : Math.round(usd * NANO_USD));
const msToNextUtcDay = (now: Date) =>
  Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime();
const msToNextUtcMonth = (now: Date) => Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime();

export const TOKENS_PER_MINUTE: ChargedLimit = {
  counter: 'tpm',
  limit: (l) => l.tpm,
  bucket: (id) => id,
  windowSec: 60,
  points: ({ tokens }) => tokens,
  code: 'rate_limit_exceeded',
  message: (id, l) => `Rate limit reached for key '${id}': ${l.tpm} tokens per minute.`,
  msUntilReset: () => null,
};

export const CHARGED_LIMITS: ChargedLimit[] = [
  TOKENS_PER_MINUTE,
  {
    counter: 'daily-tokens',
    limit: (l) => l.dailyTokens,
    bucket: (id, now) => `${id}:${utcDay(now)}`,
    windowSec: (2 * DAY_MS) / 1000,
    points: ({ tokens }) => tokens,
    code: 'quota_exceeded',
    message: (id, l) => `Daily token quota of ${l.dailyTokens} reached for key '${id}'; it resets at 00:00 UTC.`,
    msUntilReset: msToNextUtcDay,
  },
  {
    counter: 'usd-day',
    limit: (l) => nano(l.budgetUsdDay),
    bucket: (id, now) => `${id}:${utcDay(now)}`,
    windowSec: (2 * DAY_MS) / 1000,
    points: ({ nanoUsd }) => nanoUsd,
    code: 'budget_exceeded',
    message: (id, l) => `Daily budget of $${l.budgetUsdDay} reached for key '${id}'; it resets at 00:00 UTC.`,
    msUntilReset: msToNextUtcDay,
  },
  {
    counter: 'usd-month',
    limit: (l) => nano(l.budgetUsdMonth),
    bucket: (id, now) => `${id}:${utcMonth(now)}`,
    windowSec: (32 * DAY_MS) / 1000,
    points: ({ nanoUsd }) => nanoUsd,
    code: 'budget_exceeded',
    message: (id, l) => `Monthly budget of $${l.budgetUsdMonth} reached for key '${id}'; it resets on the 1st (UTC).`,
    msUntilReset: msToNextUtcMonth,
  },
];
