import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError } from '@gguf-gateway/shared';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Auth's decision endpoints answer only a caller holding AUTH_INTERNAL_TOKEN (the gateway), sent as
 * `Authorization: Bearer <token>`: without it, anyone who can reach auth's port could test keys,
 * settle other requests' leases, reload the keys file, or name any `ip` to dodge the failed-key
 * throttle. Both sides are hashed first so the comparison is constant-time whatever the lengths;
 * the token is never logged (the logger redacts the authorization header and any Bearer value).
 */
export function requireInternalToken(token: string): RequestHandler {
  const expected = digest(token);
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (presented !== '' && timingSafeEqual(digest(presented), expected)) return next();
    next(
      new ApiError(401, 'This endpoint is internal: send the AUTH_INTERNAL_TOKEN as a Bearer token.', {
        code: 'invalid_internal_token',
      }),
    );
  };
}
