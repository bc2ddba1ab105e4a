import { createServer, type Server } from 'node:http';
import type { Express } from 'express';

export interface ApiServerLimits {
  /** Until a request's headers are in. */
  headersTimeoutMs: number;
  /** Until a request's whole body is in (a slow upload); never applies to the response. */
  requestTimeoutMs: number;
  /** Open connections at most; past it new ones are closed at once. */
  maxConnections: number;
}

// Node checks the two timeouts on this interval (30 s by default): a much later cut than configured.
const TIMEOUT_CHECK_INTERVAL_MS = 1000;

/** The API's HTTP server, bounded against slow or many connections, listening once it resolves. */
export function listenApi(app: Express, port: number, host: string, limits: ApiServerLimits): Promise<Server> {
  const server = createServer(
    {
      // Node refuses a headers timeout longer than the request's.
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    },
    app,
  );
  server.maxConnections = limits.maxConnections;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Node's default accept queue (511) overflows when a burst of clients connects while the event
    // loop is busy: the kernel then resets connections the server never saw. The kernel caps it at
    // net.core.somaxconn.
    server.listen({ port, host, backlog: limits.maxConnections }, () => resolve(server));
  });
}
