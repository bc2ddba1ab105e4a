import { randomUUID } from 'node:crypto';
import {
  ApiError,
  costUsd,
  matchesAnyGlob,
  type ApiKeyEntry,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type PriceTable,
  type SettleRequest,
} from '@gguf-gateway/shared';
import type { ApiKeysService, KeyLookup } from './api-keys.service.js';
import type { AuthMetrics, DecisionResult } from './auth.metrics.js';
import type { LeaseStore } from './leases.repository.js';
import type { CounterState, LimitsRepository } from './limits.repository.js';
import { rateLimitHeaders, retryAfterSeconds, type WindowFigures } from './rate-limit-headers.js';

export interface AuthorizeSettings {
  leaseTtlSec: number;
  failedAuthMax: number;
  failedAuthWindowSec: number;
}

export interface Authorized {
  body: AuthorizeResponse;
  headers: Record<string, string>;
}

const MINUTE = 60;
const TWO_DAYS = 2 * 86_400;
const MONTH_AND_A_DAY = 32 * 86_400;
// Budgets are counted in nano-USD: whole points, and a 10-token request still costs something.
const NANO_USD = 1e9;

interface Usage {
  requests: CounterState | null;
  tokens: CounterState | null;
  dailyTokens: CounterState | null;
  usdDay: CounterState | null;
  usdMonth: CounterState | null;
}

function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

function utcMonth(now: Date): string {
  return now.toISOString().slice(0, 7);
}

function msToNextUtcDay(now: Date): number {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime();
}

function msToNextUtcMonth(now: Date): number {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime();
}

function figures(limit: number | null, state: CounterState | null): WindowFigures | null {
  return limit === null || !state ? null : { limit, remaining: state.remaining, msBeforeReset: state.msBeforeReset };
}

/** Answers "may this request run?" and charges what it used once it has run. */
export class AuthorizeService {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly limits: LimitsRepository,
    private readonly leases: LeaseStore,
    private readonly prices: PriceTable,
    private readonly metrics: AuthMetrics,
    private readonly settings: AuthorizeSettings,
  ) {}

  async authorize(request: AuthorizeRequest): Promise<Authorized> {
    try {
      const authorized = await this.decide(request);
      this.metrics.decision('allowed');
      return authorized;
    } catch (err) {
      if (err instanceof ApiError && err.code) this.metrics.decision(err.code as DecisionResult);
      throw err;
    }
  }

  async settle({ lease, promptTokens, completionTokens }: SettleRequest): Promise<void> {
    const record = await this.leases.take(lease);
    const key = record ? this.keys.byId(record.keyId) : undefined;
    if (!record || !key) return;
    const { limits, id } = key;
    const now = new Date();
    const tokens = promptTokens + completionTokens;
    const nanoUsd = record.model
      ? Math.round(costUsd(this.prices, record.model, promptTokens, completionTokens) * NANO_USD)
      : 0;
    const charges: Promise<void>[] = [];
    if (limits.tpm !== null) charges.push(this.limits.charge('tpm', id, limits.tpm, MINUTE, tokens));
    if (limits.dailyTokens !== null) {
      charges.push(this.limits.charge('daily-tokens', `${id}:${utcDay(now)}`, limits.dailyTokens, TWO_DAYS, tokens));
    }
    if (limits.budgetUsdDay !== null) {
      const limit = Math.round(limits.budgetUsdDay * NANO_USD);
      charges.push(this.limits.charge('usd-day', `${id}:${utcDay(now)}`, limit, TWO_DAYS, nanoUsd));
    }
    if (limits.budgetUsdMonth !== null) {
      const limit = Math.round(limits.budgetUsdMonth * NANO_USD);
      charges.push(this.limits.charge('usd-month', `${id}:${utcMonth(now)}`, limit, MONTH_AND_A_DAY, nanoUsd));
    }
    await Promise.all(charges);
  }

  renew(lease: string): Promise<boolean> {
    return this.leases.renew(lease, this.settings.leaseTtlSec * 1000);
  }

  private async decide({ key: presented, model, route, ip }: AuthorizeRequest): Promise<Authorized> {
    const found = this.keys.lookup(presented);
    const now = new Date();
    // The address check and the key's usage are independent reads: one Redis round trip for both.
    const [failures, usage] = await Promise.all([
      this.failuresFrom(ip),
      found.kind === 'found' ? this.usage(found.key, now) : null,
    ]);
    this.refuseBlockedAddress(failures);
    const key = await this.identify(found, ip, now);
    if (route === 'admin' && !key.scopes.includes('admin')) {
      throw new ApiError(403, `The API key '${key.id}' does not have the admin scope this route needs.`, {
        code: 'insufficient_scope',
      });
    }
    if (model !== null && key.modelMatchers.length > 0 && !matchesAnyGlob(model, key.modelMatchers)) {
      throw new ApiError(403, `The API key '${key.id}' is not allowed to use the model '${model}'.`, {
        code: 'model_not_allowed',
        param: 'model',
      });
    }
    const spent = usage ?? (await this.usage(key, now));
    this.refuseSpentTokens(key, spent, now);
    return this.admit(key, model, spent);
  }

  private failuresFrom(ip: string): Promise<CounterState> {
    const { failedAuthMax, failedAuthWindowSec } = this.settings;
    return this.limits.peek('failed-ip', ip, failedAuthMax, failedAuthWindowSec);
  }

  private refuseBlockedAddress(failures: CounterState): void {
    if (failures.consumed < this.settings.failedAuthMax) return;
    throw new ApiError(429, 'Too many requests with an invalid API key from this address; try again later.', {
      code: 'rate_limit_exceeded',
      headers: { 'Retry-After': retryAfterSeconds(failures.msBeforeReset) },
    });
  }

  /** The key a lookup found, or the 401 that names why there is none (counting guesses per address). */
  private async identify(found: KeyLookup, ip: string, now: Date): Promise<ApiKeyEntry> {
    switch (found.kind) {
      case 'found':
        if (found.key.expiresAt && found.key.expiresAt.getTime() <= now.getTime()) {
          throw invalidKey(`The API key '${found.key.id}' expired at ${found.key.expiresAt.toISOString()}.`);
        }
        return found.key;
      case 'no_keys_loaded':
        throw invalidKey('The server has no API keys loaded, so every request is refused; add keys to its keys file.');
      case 'missing':
        throw invalidKey("You didn't provide an API key. Send it in the Authorization header as 'Bearer <key>'.");
      case 'malformed':
        await this.countFailure(ip);
        throw invalidKey('The API key is malformed: it must be printable characters without spaces.');
      case 'unknown':
        await this.countFailure(ip);
        throw invalidKey('Incorrect API key provided.');
    }
  }

  private countFailure(ip: string): Promise<void> {
    const { failedAuthMax, failedAuthWindowSec } = this.settings;
    return this.limits.charge('failed-ip', ip, failedAuthMax, failedAuthWindowSec, 1);
  }

  private async usage({ id, limits }: ApiKeyEntry, now: Date): Promise<Usage> {
    const peek = (counter: string, key: string, limit: number | null, windowSec: number) =>
      limit === null ? Promise.resolve(null) : this.limits.peek(counter, key, limit, windowSec);
    const nano = (usd: number | null) => (usd === null ? null : Math.round(usd * NANO_USD));
    const [requests, tokens, dailyTokens, usdDay, usdMonth] = await Promise.all([
      peek('rpm', id, limits.rpm, MINUTE),
      peek('tpm', id, limits.tpm, MINUTE),
      peek('daily-tokens', `${id}:${utcDay(now)}`, limits.dailyTokens, TWO_DAYS),
      peek('usd-day', `${id}:${utcDay(now)}`, nano(limits.budgetUsdDay), TWO_DAYS),
      peek('usd-month', `${id}:${utcMonth(now)}`, nano(limits.budgetUsdMonth), MONTH_AND_A_DAY),
    ]);
    return { requests, tokens, dailyTokens, usdDay, usdMonth };
  }

  private refuseSpentTokens(key: ApiKeyEntry, usage: Usage, now: Date): void {
    const headers = rateLimitHeaders(figures(key.limits.rpm, usage.requests), figures(key.limits.tpm, usage.tokens));
    const refuse = (code: string, message: string, retryMs: number) =>
      new ApiError(429, message, { code, headers: { ...headers, 'Retry-After': retryAfterSeconds(retryMs) } });
    if (usage.tokens && usage.tokens.remaining === 0) {
      throw refuse(
        'rate_limit_exceeded',
        `Rate limit reached for key '${key.id}': ${key.limits.tpm} tokens per minute.`,
        usage.tokens.msBeforeReset,
      );
    }
    if (usage.dailyTokens && usage.dailyTokens.remaining === 0) {
      throw refuse(
        'quota_exceeded',
        `Daily token quota of ${key.limits.dailyTokens} reached for key '${key.id}'; it resets at 00:00 UTC.`,
        msToNextUtcDay(now),
      );
    }
    if (usage.usdDay && usage.usdDay.remaining === 0) {
      throw refuse(
        'budget_exceeded',
        `Daily budget of $${key.limits.budgetUsdDay} reached for key '${key.id}'; it resets at 00:00 UTC.`,
        msToNextUtcDay(now),
      );
    }
    if (usage.usdMonth && usage.usdMonth.remaining === 0) {
      throw refuse(
        'budget_exceeded',
        `Monthly budget of $${key.limits.budgetUsdMonth} reached for key '${key.id}'; it resets on the 1st (UTC).`,
        msToNextUtcMonth(now),
      );
    }
  }

  /** Takes a concurrency slot, then a request from the rpm window; gives the slot back if refused. */
  private async admit(key: ApiKeyEntry, model: string | null, usage: Usage): Promise<Authorized> {
    const { limits } = key;
    const lease = randomUUID();
    const ttlMs = this.settings.leaseTtlSec * 1000;
    const tokenFigures = figures(limits.tpm, usage.tokens);
    const slot = await this.leases.acquire(
      lease,
      { keyId: key.id, model, holdsSlot: limits.concurrency !== null },
      limits.concurrency,
      ttlMs,
    );
    if (!slot.acquired) {
      throw new ApiError(429, `Too many concurrent requests for key '${key.id}': at most ${limits.concurrency}.`, {
        code: 'rate_limit_exceeded',
        headers: {
          ...rateLimitHeaders(figures(limits.rpm, usage.requests), tokenFigures),
          'Retry-After': retryAfterSeconds(slot.msBeforeFreeSlot),
        },
      });
    }
    let requests: CounterState | null = null;
    if (limits.rpm !== null) {
      const consumed = await this.limits.consume('rpm', key.id, limits.rpm, MINUTE);
      requests = consumed;
      if (!consumed.allowed) {
        await this.leases.take(lease);
        throw new ApiError(429, `Rate limit reached for key '${key.id}': ${limits.rpm} requests per minute.`, {
          code: 'rate_limit_exceeded',
          headers: {
            ...rateLimitHeaders(figures(limits.rpm, consumed), tokenFigures),
            'Retry-After': retryAfterSeconds(consumed.msBeforeReset),
          },
        });
      }
    }
    return {
      body: {
        keyId: key.id,
        scopes: key.scopes,
        limits,
        remaining: { requests: requests?.remaining ?? null, tokens: usage.tokens?.remaining ?? null },
        lease,
        leaseTtlSec: this.settings.leaseTtlSec,
      },
      headers: rateLimitHeaders(figures(limits.rpm, requests), tokenFigures),
    };
  }
}

function invalidKey(message: string): ApiError {
  return new ApiError(401, message, { code: 'invalid_api_key' });
}
