import type { AuthorizeRequest, AuthorizeResponse } from '@gguf-gateway/shared';

// Decisions auth granted for reuse (AuthorizationGrant in the contracts), by everything auth decided
// on: key, route, model and client address. Held only in this process's memory, never logged.

const MAX_GRANTS = 10_000;

interface Held {
  decision: AuthorizeResponse;
  expiresAt: number;
}

function grantKey({ key, route, model, ip }: AuthorizeRequest): string {
  return `${route}\0${model ?? ''}\0${ip}\0${key}`;
}

export class AuthorizationGrants {
  private readonly held = new Map<string, Held>();
  private readonly inFlight = new Map<string, Promise<unknown>>();

  /** The granted decision for this request, while its grant lasts. */
  find(request: AuthorizeRequest): AuthorizeResponse | undefined {
    const held = this.held.get(grantKey(request));
    return held && held.expiresAt > performance.now() ? held.decision : undefined;
  }

  /**
   * Runs `ask` (a call to auth for this request), so that requests arriving meanwhile can wait for
   * its grant instead of each asking auth too.
   */
  async asking<T>(request: AuthorizeRequest, ask: () => Promise<T>): Promise<T> {
    const key = grantKey(request);
    const pending = ask();
    this.inFlight.set(key, pending);
    try {
      return await pending;
    } finally {
      if (this.inFlight.get(key) === pending) this.inFlight.delete(key);
    }
  }

  /**
   * Settles once the call to auth for the same key, route, model and address is over, when that
   * call may bring a grant (one was granted before): requests of other keys never wait.
   */
  askedAlready(request: AuthorizeRequest): Promise<void> | undefined {
    const key = grantKey(request);
    if (!this.held.has(key)) return undefined;
    return this.inFlight.get(key)?.then(
      () => undefined,
      () => undefined,
    );
  }

  /** Keeps an allowed decision when auth granted its reuse (an expired one stays as a marker). */
  keep(request: AuthorizeRequest, decision: AuthorizeResponse): void {
    if (!decision.grant || decision.grant.ttlMs <= 0) {
      this.held.delete(grantKey(request));
      return;
    }
    if (this.held.size >= MAX_GRANTS) this.dropExpired();
    // Still full: many keys or addresses at once. Dropping all costs one auth round trip each.
    if (this.held.size >= MAX_GRANTS) this.held.clear();
    this.held.set(grantKey(request), { decision, expiresAt: performance.now() + decision.grant.ttlMs });
  }

  private dropExpired(): void {
    const now = performance.now();
    for (const [key, held] of this.held) if (held.expiresAt <= now) this.held.delete(key);
  }
}
