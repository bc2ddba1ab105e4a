import { randomUUID } from 'node:crypto';
import {
  ApiError,
  RPM_WINDOW_SEC,
  costUsd,
  matchesAnyGlob,
  rateLimitHeaders,
  retryAfterSeconds,
  type ApiKeyEntry,
  type AuthorizationGrant,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type IdentifyRequest,
  type IdentifyResponse,
  type PriceTable,
  type SettleRequest,
  type WindowFigures,
} from '@gguf-gateway/shared';
import type { ApiKeysService, KeyLookup } from './api-keys.service.js';
import type { AuthMetrics, DecisionResult } from './auth.metrics.js';
import { CHARGED_LIMITS, NANO_USD, TOKENS_PER_MINUTE } from './charged-limits.js';
import type { LeaseStore } from './leases.repository.js';
import type { CounterState, LimitsRepository } from './limits.repository.js';

export interface AuthorizeSettings {
  leaseTtlSec: number;
  failedAuthMax: number;
  failedAuthWindowSec: number;
  /** How long the gateway may reuse an allowed decision (AuthorizationGrant); 0 grants nothing. */
  grantTtlMs: number;
  /** Whether the rpm window is the shared Redis one (not the per-instance insurance limiter). */
  limitsShared: () => boolean;
}

export interface Authorized {
  body: AuthorizeResponse;
  headers: Record<string, string>;
}

// The rpm counter is 'auth:rpm' (RPM_LIMITER_PREFIX): the gateway spends grant-served requests there.
const MINUTE = RPM_WINDOW_SEC;

/** What the key has used: its rpm window, and each charged limit it has (same order as CHARGED_LIMITS). */
interface Usage {
  requests: CounterState | null;
  charged: (CounterState | null)[];
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

  /** The key's id when it is valid: the gateway asks this before it reads a request's body. */
  async identify({ key: presented, ip }: IdentifyRequest): Promise<IdentifyResponse> {
    try {
      const key = await this.identifyKey(this.keys.lookup(presented), ip, new Date());
      return { keyId: key.id };
    } catch (err) {
      // Only refusals are decisions: an identified request is counted once, by its authorize.
      if (err instanceof ApiError && err.code) this.metrics.decision(err.code as DecisionResult);
      throw err;
    }
  }

  async settle({ lease, promptTokens, completionTokens }: SettleRequest): Promise<void> {
    const record = await this.leases.take(lease);
    const key = record ? this.keys.byId(record.keyId) : undefined;
    if (!record || !key) return;
    const now = new Date();
    const cost = record.model ? costUsd(this.prices, record.model, promptTokens, completionTokens) : 0;
    const used = { tokens: promptTokens + completionTokens, nanoUsd: Math.round(cost * NANO_USD) };
    await Promise.all(
      CHARGED_LIMITS.map((charged) => {
        const limit = charged.limit(key.limits);
        if (limit === null) return;
        return this.limits.charge(
          charged.counter,
          charged.bucket(key.id, now),
          limit,
          charged.windowSec,
          charged.points(used),
        );
      }),
    );
  }

  renew(lease: string): Promise<boolean> {
    return this.leases.renew(lease, this.settings.leaseTtlSec * 1000);
  }

  private async decide({ key: presented, model, route, ip }: AuthorizeRequest): Promise<Authorized> {
    const found = this.keys.lookup(presented);
    const now = new Date();
    const usage = found.kind === 'found' ? await this.usage(found.key, now) : null;
    const key = await this.identifyKey(found, ip, now);
    if (route === 'admin' && !key.scopes.includes('admin')) {
      throw new ApiError(403, `The API key '${key.id}' does not have the admin scope this route needs.`, {
        code: 'insufficient_scope',
      });
    }
    if (route !== 'admin' && route !== 'models' && key.routes.length > 0 && !key.routes.includes(route)) {
      throw new ApiError(
        403,
        `The API key '${key.id}' may not call the ${route} route (routes=${key.routes.join('|')}).`,
        {
          code: 'insufficient_scope',
        },
      );
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

  /**
   * Past FAILED_AUTH_MAX wrong keys, an address's further wrong keys get 429 instead of 401. Only
   * failures are counted and refused: a valid key is served from any address, so one client's
   * guesses never lock out the others behind the same proxy.
   */
  private async refuseOrCountFailure(ip: string): Promise<void> {
    const { failedAuthMax, failedAuthWindowSec } = this.settings;
    const failures = await this.limits.peek('failed-ip', ip, failedAuthMax, failedAuthWindowSec);
    if (failures.consumed >= failedAuthMax) {
      throw new ApiError(429, 'Too many requests with an invalid API key from this address; try again later.', {
        code: 'rate_limit_exceeded',
        headers: { 'Retry-After': retryAfterSeconds(failures.msBeforeReset) },
      });
    }
    await this.limits.charge('failed-ip', ip, failedAuthMax, failedAuthWindowSec, 1);
  }

  /** The key a lookup found, or the 401 that names why there is none (counting guesses per address). */
  private async identifyKey(found: KeyLookup, ip: string, now: Date): Promise<ApiKeyEntry> {
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
        await this.refuseOrCountFailure(ip);
        throw invalidKey('The API key is malformed: it must be printable characters without spaces.');
      case 'unknown':
        await this.refuseOrCountFailure(ip);
        throw invalidKey('Incorrect API key provided.');
    }
  }

  private async usage({ id, limits }: ApiKeyEntry, now: Date): Promise<Usage> {
    const peek = (counter: string, key: string, limit: number | null, windowSec: number) =>
      limit === null ? null : this.limits.peek(counter, key, limit, windowSec);
    const [requests, ...charged] = await Promise.all([
      peek('rpm', id, limits.rpm, MINUTE),
      ...CHARGED_LIMITS.map((c) => peek(c.counter, c.bucket(id, now), c.limit(limits), c.windowSec)),
    ]);
    return { requests: requests ?? null, charged: charged.map((state) => state ?? null) };
  }

  private tokenState(usage: Usage): CounterState | null {
    return usage.charged[CHARGED_LIMITS.indexOf(TOKENS_PER_MINUTE)] ?? null;
  }

  private refuseSpentTokens(key: ApiKeyEntry, usage: Usage, now: Date): void {
    for (const [index, charged] of CHARGED_LIMITS.entries()) {
      const state = usage.charged[index];
      if (!state || state.remaining > 0) continue;
      const headers = rateLimitHeaders(
        figures(key.limits.rpm, usage.requests),
        figures(key.limits.tpm, this.tokenState(usage)),
      );
      const retryMs = charged.msUntilReset(now) ?? state.msBeforeReset;
      throw new ApiError(429, charged.message(key.id, key.limits), {
        code: charged.code,
        headers: { ...headers, 'Retry-After': retryAfterSeconds(retryMs) },
      });
    }
  }

  /** Takes a concurrency slot, then a request from the rpm window; gives the slot back if refused. */
  private async admit(key: ApiKeyEntry, model: string | null, usage: Usage): Promise<Authorized> {
    const { limits } = key;
    const lease = randomUUID();
    const ttlMs = this.settings.leaseTtlSec * 1000;
    const tokenFigures = figures(limits.tpm, this.tokenState(usage));
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
        remaining: { requests: requests?.remaining ?? null, tokens: this.tokenState(usage)?.remaining ?? null },
        lease,
        leaseTtlSec: this.settings.leaseTtlSec,
        grant: this.grant(key),
      },
      headers: rateLimitHeaders(figures(limits.rpm, requests), tokenFigures),
    };
  }

  /**
   * A grant only where the gateway's own count is provably the same as ours: rpm is the key's only
   * per-request limit (settle would charge nothing and hold no slot), and the rpm window is the
   * shared Redis one. It never outlives the key.
   */
  private grant(key: ApiKeyEntry): AuthorizationGrant | undefined {
    const { grantTtlMs, limitsShared } = this.settings;
    if (grantTtlMs <= 0 || key.limits.concurrency !== null || !limitsShared()) return undefined;
    if (CHARGED_LIMITS.some((charged) => charged.limit(key.limits) !== null)) return undefined;
    const ttlMs = Math.min(grantTtlMs, (key.expiresAt?.getTime() ?? Infinity) - Date.now());
    return ttlMs > 0 ? { ttlMs } : undefined;
  }
}

function invalidKey(message: string): ApiError {
  return new ApiError(401, message, { code: 'invalid_api_key' });
}
