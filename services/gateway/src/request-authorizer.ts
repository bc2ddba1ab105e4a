import type { Request, Response } from 'express';
import type { AuthorizeResponse, AuthorizedRoute, Logger } from '@gguf-gateway/shared';
import type { AuthClient } from './auth.client.js';

const BEARER = /^Bearer\s+(.+)$/i;

/** What the client sent as its key: the Bearer token, the raw header when malformed, "" when none. */
export function clientKey(req: Request): string {
  const header = req.headers.authorization;
  if (!header) return '';
  return BEARER.exec(header)?.[1]?.trim() ?? header;
}

export class RequestAuthorizer {
  constructor(
    private readonly auth: AuthClient,
    private readonly logger: Logger,
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
    const requestId = res.getHeader('x-request-id') as string;
    const result = await this.auth.authorize({ key: clientKey(req), model, route, ip: req.ip ?? '' }, requestId);
    if (!result.allowed) throw result.error;
    res.set(result.headers);
    res.locals.keyId = result.decision.keyId;
    return result.decision;
  }

  /** Hands the lease back once; failures are logged, since the client has its answer already. */
  settle(lease: string, requestId: string, promptTokens = 0, completionTokens = 0): void {
    this.auth.settle({ lease, promptTokens, completionTokens }, requestId).catch((err: unknown) => {
      this.logger.warn({ err, requestId }, 'settle failed: the lease expires on its own');
    });
  }

  /** For requests without tokens (models, admin): settle as soon as the response is over. */
  settleOnClose(res: Response, lease: string): void {
    res.once('close', () => this.settle(lease, res.getHeader('x-request-id') as string));
  }

  /** Keeps a long request's concurrency lease alive; returns the function that stops it. */
  keepLeaseAlive(lease: string, ttlSec: number, requestId: string): () => void {
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
