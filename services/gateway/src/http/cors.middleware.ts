import type { RequestHandler } from 'express';
import { ApiError, sendApiError } from '@gguf-gateway/shared';

const ALLOWED_HEADERS = 'authorization, content-type, x-request-id, openai-organization, openai-project';
const EXPOSED_HEADERS =
  'x-request-id, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, ' +
  'x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens';

/** Browsers may call the API only from the configured origins; other callers are unaffected. */
export function corsAllowlist(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (!origin) return next();
    res.vary('Origin');
    if (!allowed.has(origin)) {
      if (req.method !== 'OPTIONS') return next();
      return sendApiError(res, new ApiError(403, 'This origin is not allowed.', { code: 'cors_origin_not_allowed' }));
    }
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
    if (req.method !== 'OPTIONS') return next();
    res.setHeader('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS');
    // The official SDKs send headers of their own (x-stainless-*): an allowed origin may send any.
    res.setHeader('access-control-allow-headers', req.get('access-control-request-headers') ?? ALLOWED_HEADERS);
    res.vary('Access-Control-Request-Headers');
    res.setHeader('access-control-max-age', '600');
    res.status(204).end();
  };
}
