import type { RequestHandler } from 'express';
import type { Logger } from '@gguf-gateway/shared';

// One line per finished request, in the fields pino-http wrote (req, res, responseTime), at info,
// warn for 4xx and error for 5xx. Built only when its level is on: no child logger per request.

// A probe's 503 (/readyz while starting) is the state it reports, not a failure: info.
const PROBES = new Set(['/readyz', '/healthz', '/health', '/ping']);

function levelOf(status: number, path: string): 'info' | 'warn' | 'error' {
  if (PROBES.has(path)) return 'info';
  return status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
}

export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const { method, originalUrl: url, path } = req;
    res.once('close', () => {
      const status = res.statusCode;
      const level = levelOf(status, path);
      if (!logger.isLevelEnabled(level)) return;
      const aborted = !res.writableFinished;
      logger[level](
        {
          req: { method, url },
          res: { statusCode: status },
          responseTime: Math.round(performance.now() - started),
          ...(aborted ? { aborted } : {}),
          // The usage event's id, when the client's own x-request-id could not be it.
          ...(res.locals.usageId ? { usageId: res.locals.usageId as string } : {}),
        },
        aborted ? 'request aborted' : 'request completed',
      );
    });
    next();
  };
}
