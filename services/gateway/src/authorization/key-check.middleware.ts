import type { Request, RequestHandler, Response } from 'express';
import type { RequestAuthorizer } from './request-authorizer.js';

/**
 * For a refusal sent before the body was read: the connection is closed after it, so megabytes the
 * caller still sends are not received only to be thrown away.
 */
export function closeIfBodyUnread(req: Request, res: Response): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
  if (hasBody && !req.complete) res.setHeader('connection', 'close');
}

/** In front of every body parser: a request without a valid key is refused from its headers alone. */
export function requireValidKey(authorizer: RequestAuthorizer): RequestHandler {
  const refused = (req: Request, res: Response, err: unknown): never => {
    closeIfBodyUnread(req, res);
    throw err;
  };
  return (req, res, next) => {
    let asking: Promise<void> | undefined;
    try {
      asking = authorizer.checkKey(req, res);
    } catch (err) {
      refused(req, res, err);
    }
    if (!asking) return next();
    return asking.then(next, (err: unknown) => refused(req, res, err));
  };
}
