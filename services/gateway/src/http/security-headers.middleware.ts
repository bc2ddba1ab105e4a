import type { Request, RequestHandler, Response } from 'express';
import helmet from 'helmet';

// helmet's headers (no CSP: the API serves no HTML), taken from helmet once at startup and then set
// in one step per request instead of through its eleven middlewares.

function helmetHeaders(): [string, string][] {
  const headers: [string, string][] = [];
  const recorder = {
    setHeader: (name: string, value: string | number) => headers.push([name, String(value)]),
    removeHeader: () => undefined,
  };
  helmet({ contentSecurityPolicy: false })({} as Request, recorder as unknown as Response, () => undefined);
  return headers;
}

export function securityHeaders(): RequestHandler {
  const headers = helmetHeaders();
  return (_req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    next();
  };
}
