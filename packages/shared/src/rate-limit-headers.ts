// OpenAI-style rate-limit headers, shared by auth (its answers) and the gateway (grant-served requests).
/** A duration the way OpenAI writes its reset headers: `250ms`, `12s`, `1m30s`, `2h0m5s`. */
export function formatResetDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const total = Math.ceil(ms / 1000);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Whole seconds for Retry-After, never 0 (a client told 0 retries at once into the same wall). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

export interface WindowFigures {
  limit: number;
  remaining: number;
  msBeforeReset: number;
}

export function rateLimitHeaders(requests: WindowFigures | null, tokens: WindowFigures | null): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [kind, figures] of [
    ['requests', requests],
    ['tokens', tokens],
  ] as const) {
    if (!figures) continue;
    headers[`x-ratelimit-limit-${kind}`] = String(figures.limit);
    headers[`x-ratelimit-remaining-${kind}`] = String(figures.remaining);
    headers[`x-ratelimit-reset-${kind}`] = formatResetDuration(figures.msBeforeReset);
  }
  return headers;
}
