import type { Logger, WindowFigures } from '@gguf-gateway/shared';
import type { Reserved, RpmWindowRepository } from './rpm-window.repository.js';

// Requests served from a grant are counted in the key's shared rpm window, but not one Redis round
// trip each: the gateway reserves a block of requests, spends it locally while the grant lasts and
// refunds what is left. Never more than the limit is admitted across replicas (a block is room in
// the window, taken atomically). Fewer can be, only while another replica holds unspent requests of
// a block, for at most one grant TTL (or, if that gateway dies, until the window resets): so a
// block is at most a tenth of the limit and grows only with the demand seen.

const MAX_BLOCK = 1000;
const LIMIT_SHARE = 10;

interface Reservation {
  left: number;
  used: number;
  /** The window's count right after reserving. */
  consumed: number;
  /** performance.now() when the window resets. */
  resetAt: number;
  /** Redis's time-to-reset when reserving: a refund goes only into that window. */
  msBeforeResetWhenReserved: number;
  expiresAt: number;
  timer: NodeJS.Timeout;
}

interface KeyState {
  reservation: Reservation | null;
  reserving: Promise<Reserved> | null;
  /** Requests spent from the last reservation: the next one asks for twice that. */
  lastUsed: number;
}

export class RpmReservations {
  /** One entry per key id that was served from a grant: as many as the keys file has. */
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly window: RpmWindowRepository,
    private readonly logger: Logger,
  ) {}

  /**
   * Spends one request of the key's window; null when the window is full. Throws when Redis does
   * not answer. `holdMs`: how long unspent requests may be held (the grant's TTL).
   */
  async spend(keyId: string, rpm: number, holdMs: number): Promise<WindowFigures | null> {
    let state = this.keys.get(keyId);
    if (!state) {
      state = { reservation: null, reserving: null, lastUsed: 0 };
      this.keys.set(keyId, state);
    }
    for (;;) {
      const now = performance.now();
      const held = state.reservation;
      if (held && held.left > 0 && held.expiresAt > now) {
        held.left -= 1;
        held.used += 1;
        return {
          limit: rpm,
          remaining: Math.max(rpm - held.consumed + held.left, 0),
          msBeforeReset: Math.max(held.resetAt - now, 0),
        };
      }
      state.reserving ??= this.reserve(keyId, rpm, holdMs, state).finally(() => (state.reserving = null));
      if ((await state.reserving).taken === 0) return null;
    }
  }

  private async reserve(keyId: string, rpm: number, holdMs: number, state: KeyState): Promise<Reserved> {
    void this.release(keyId, state);
    const want = Math.min(MAX_BLOCK, Math.max(1, Math.floor(rpm / LIMIT_SHARE)), Math.max(1, 2 * state.lastUsed));
    const reserved = await this.window.reserve(keyId, rpm, want);
    if (reserved.taken > 0) {
      const now = performance.now();
      state.reservation = {
        left: reserved.taken,
        used: 0,
        consumed: reserved.consumed,
        resetAt: now + reserved.msBeforeReset,
        msBeforeResetWhenReserved: reserved.msBeforeReset,
        expiresAt: now + holdMs,
        timer: setTimeout(() => void this.release(keyId, state), holdMs).unref(),
      };
    }
    return reserved;
  }

  /** On shutdown: refunds every unspent request, so a restart strands none of the window. */
  async close(): Promise<void> {
    await Promise.all([...this.keys].map(([keyId, state]) => this.release(keyId, state)));
  }

  /** Ends the key's reservation and refunds what it did not spend. */
  private async release(keyId: string, state: KeyState): Promise<void> {
    const held = state.reservation;
    if (!held) return;
    state.reservation = null;
    clearTimeout(held.timer);
    state.lastUsed = held.used;
    if (held.left === 0) return;
    try {
      await this.window.refund(keyId, held.left, held.msBeforeResetWhenReserved);
    } catch (err) {
      this.logger.warn({ err, keyId }, 'rpm refund failed: the unspent requests come back when the window resets');
    }
  }
}
