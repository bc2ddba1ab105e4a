import type { Request, Response } from 'express';
import {
  ApiError,
  rateLimitHeaders,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type AuthorizedRoute,
  type Logger,
} from '@gguf-gateway/shared';
import type { AuthClient, AuthorizeResult } from './auth.client.js';
import { AuthorizationGrants } from './authorization-grants.js';
import { IdentifiedKeys } from './identified-keys.js';
import type { RpmWindowRepository } from './rpm-window.repository.js';

const BEARER = /^Bearer\s+(.+)$/i;
/** Far longer than any real key: such a header is refused here, without a call to auth. */
const MAX_AUTHORIZATION_LENGTH = 1024;

/**
 * What the client sent as its key: the Bearer token, the raw header when malformed, else the
 * `x-api-key` header (Anthropic's SDKs send the key so), "" when none.
 */
export function clientKey(req: Request): string {
  const header = req.headers.authorization;
  if (!header) return apiKeyHeader(req);
  return BEARER.exec(header)?.[1]?.trim() ?? header;
}

function apiKeyHeader(req: Request): string {
  const value = req.headers['x-api-key'];
  return (Array.isArray(value) ? value[0] : value)?.trim() ?? '';
}

function refuseLongHeader(req: Request): void {
  if (Math.max(req.headers.authorization?.length ?? 0, apiKeyHeader(req).length) > MAX_AUTHORIZATION_LENGTH) {
    throw new ApiError(401, 'Malformed API key: the Authorization header is too long.', { code: 'invalid_api_key' });
  }
}

interface Decided {
  decision: AuthorizeResponse;
  headers: Record<string, string>;
}

function allowed(result: AuthorizeResult): Decided {
  if (!result.allowed) throw result.error;
  return result;
}

// A request admitted from a grant holds no lease: there is no slot to release and nothing to charge.
const NO_LEASE = '';

export class RequestAuthorizer {
  private readonly grants = new AuthorizationGrants();
  private readonly identified = new IdentifiedKeys();

  /** @param rpmWindow where grant-served requests are counted; without it every request asks auth. */
  constructor(
    private readonly auth: AuthClient,
    private readonly logger: Logger,
    private readonly rpmWindow?: RpmWindowRepository,
  ) {}

  /**
   * Asks auth whether this request may run. A refusal is thrown as auth worded it (status, body,
   * Retry-After and x-ratelimit-* headers); on success the x-ratelimit-* headers go on `res`.
   */
  async authorize(
    req: Request,
    res: Response,
    route: AuthorizedRoute,
    model: string | null,
  ): Promise<AuthorizeResponse> {
    refuseLongHeader(req);
    const request: AuthorizeRequest = { key: clientKey(req), model, route, ip: req.ip ?? '' };
    const { decision, headers } = (await this.fromGrant(request)) ?? (await this.askAuth(request, res));
    res.set(headers);
    res.locals.keyId = decision.keyId;
    return decision;
  }

  /**
   * From the headers alone: refuses with auth's 401 (or 429) unless the key is valid, thrown or as the
   * returned promise's rejection (undefined: a key identified lately, valid). Runs before a body is
   * read, so a caller without a key costs no parsing; `authorize` decides for the model afterwards.
   */
  checkKey(req: Request, res: Response): Promise<void> | undefined {
    refuseLongHeader(req);
    const key = clientKey(req);
    // A key identified lately is answered at once, without a promise: this runs for every request.
    if (this.identified.has(key)) return undefined;
    return this.identify(key, req, res);
  }

  private async identify(key: string, req: Request, res: Response): Promise<void> {
    await this.auth.identify({ key, ip: req.ip ?? '' }, res.getHeader('x-request-id') as string);
    this.identified.add(key);
  }

  private async askAuth(request: AuthorizeRequest, res: Response): Promise<Decided> {
    const requestId = res.getHeader('x-request-id') as string;
    if (!this.rpmWindow) return allowed(await this.auth.authorize(request, requestId));
    // When a grant has just run out, the first request asks auth and the others wait for its grant.
    const asked = this.grants.askedAlready(request);
    if (asked) {
      await asked;
      const granted = await this.fromGrant(request);
      if (granted) return granted;
    }
    const decided = allowed(await this.grants.asking(request, () => this.auth.authorize(request, requestId)));
    this.grants.keep(request, decided.decision);
    return decided;
  }

  /**
   * Admits the request from a live grant, spending it from the key's shared rpm window. Null sends
   * it to auth: no grant, a full window (auth words the 429), or Redis not answering (auth has an
   * insurance limiter).
   */
  private async fromGrant(request: AuthorizeRequest): Promise<Decided | null> {
    if (!this.rpmWindow) return null;
    const granted = this.grants.find(request);
    if (!granted?.grant) return null;
    const { rpm } = granted.limits;
    let requests = null;
    if (rpm !== null) {
      try {
        requests = await this.rpmWindow.spend(granted.keyId, rpm);
      } catch {
        return null;
      }
      if (!requests) return null;
    }
    return {
      decision: {
        ...granted,
        remaining: { requests: requests?.remaining ?? null, tokens: null },
        lease: NO_LEASE,
      },
      headers: rateLimitHeaders(requests, null),
    };
  }

  /** Hands the lease back once; failures are logged, since the client has its answer already. */
  settle(lease: string, requestId: string, promptTokens = 0, completionTokens = 0): void {
    if (lease === NO_LEASE) return;
    this.auth.settle({ lease, promptTokens, completionTokens }, requestId).catch((err: unknown) => {
      this.logger.warn({ err, requestId }, 'settle failed: the lease expires on its own');
    });
  }

  /** For requests without tokens (models, admin): settle as soon as the response is over. */
  settleOnClose(res: Response, lease: string): void {
    if (lease === NO_LEASE) return;
    res.once('close', () => this.settle(lease, res.getHeader('x-request-id') as string));
  }

  /** Keeps a long request's concurrency lease alive; returns the function that stops it. */
  keepLeaseAlive(lease: string, ttlSec: number, requestId: string): () => void {
    if (lease === NO_LEASE) return () => undefined;
    const everyMs = Math.max(1000, (ttlSec * 1000) / 3);
    const timer = setInterval(() => {
      this.auth.renew(lease, requestId).catch((err: unknown) => {
        this.logger.warn({ err, requestId }, 'lease renew failed');
      });
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
