// Keys auth has identified lately, so that the key check in front of every body costs auth a round
// trip only once per key and TTL. Only valid keys are held (a guess is asked about each time, and
// counted by auth), in this process's memory only. A key removed meanwhile is still refused: the
// authorize after the body is read decides, this only lets the body be read.

const TTL_MS = 10_000;
const MAX_KEYS = 10_000;

export class IdentifiedKeys {
  private readonly held = new Map<string, number>();

  has(key: string): boolean {
    const expiresAt = this.held.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > performance.now()) return true;
    this.held.delete(key);
    return false;
  }

  add(key: string): void {
    // Full: many keys at once. Forgetting them costs one round trip each.
    if (this.held.size >= MAX_KEYS) this.held.clear();
    this.held.set(key, performance.now() + TTL_MS);
  }
}
