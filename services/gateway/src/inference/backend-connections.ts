import { Client, Pool, type Dispatcher } from 'undici';

// The gateway's keep-alive connections to its backends: one undici pool per backend origin. Measured
// in #16 against node:http's client, the gateway spends about a tenth less CPU per request with it at
// one connection (and as much at 32), and answers sooner.

/** A request's handler learns whether it goes out on a connection used before (see BackendConnection). */
export interface ConnectionAwareHandler extends Dispatcher.DispatchHandlers {
  reusedConnection?: boolean;
}

/**
 * One connection (undici's Client holds one socket, reopened on demand). It tells each request
 * whether its socket was open before it: a reused socket may be one the backend is closing as the
 * request goes out, and only such a request may be sent again on a new connection.
 */
class BackendConnection extends Client {
  private open = false;

  constructor(origin: URL, options: Client.Options) {
    super(origin, options);
    this.on('connect', () => (this.open = true));
    this.on('disconnect', () => (this.open = false));
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: ConnectionAwareHandler): boolean {
    handler.reusedConnection = this.open;
    return super.dispatch(options, handler);
  }
}

/** As many connections to one backend as requests in flight, up to this. */
const MAX_CONNECTIONS_PER_BACKEND = 4096;

const pools = new Map<string, Pool>();

/** The pool of connections to a backend's origin (one per origin and settings; a process has one setting). */
export function connectionsTo(url: URL, idleMs: number, connectMs: number): Pool {
  const key = `${url.origin} ${idleMs} ${connectMs}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new Pool(url.origin, {
      connections: MAX_CONNECTIONS_PER_BACKEND,
      factory: (origin, options) => new BackendConnection(origin as URL, options as Client.Options),
      // An idle connection is closed after this, before the backend closes it (llama-server: 5 s), and
      // sooner when the backend says so (Keep-Alive: timeout=...).
      keepAliveTimeout: idleMs,
      keepAliveMaxTimeout: idleMs,
      // The proxy keeps its own deadlines (connect, first byte, idle between chunks); undici's connect
      // timeout only closes the socket of a request that gave up already.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: connectMs,
    });
    pools.set(key, pool);
  }
  return pool;
}
