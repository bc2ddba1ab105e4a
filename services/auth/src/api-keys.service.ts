import { timingSafeEqual } from 'node:crypto';
import { parseKeysFile, sha256Hex, type ApiKeyEntry, type KeysFileError, type Logger } from '@gguf-gateway/shared';
import type { KeysFileRepository } from './keys-file.repository.js';

export interface ReloadResult {
  keys: number;
  errors: KeysFileError[];
}

export type KeyLookup =
  | { kind: 'found'; key: ApiKeyEntry }
  | { kind: 'no_keys_loaded' }
  | { kind: 'missing' }
  | { kind: 'malformed' }
  | { kind: 'unknown' };

// A presented key: printable ASCII without spaces, of a sane length.
const WELL_FORMED_KEY = /^[\x21-\x7e]{1,512}$/;

/**
 * The loaded keys, swapped as a whole on each reload. A reload keeps, for every bad line whose key
 * id it can read, that key's last good entry (a typo never locks a user out), and keeps the whole
 * last good set when the file cannot be read or has errors and no valid key at all. A key whose
 * line is gone is gone: that is how a key is revoked.
 */
export class ApiKeysService {
  private bySecret = new Map<string, ApiKeyEntry>();
  private byKeyId = new Map<string, ApiKeyEntry>();
  private lastText: string | null = null;
  private lastResult: ReloadResult = { keys: 0, errors: [] };
  private readProblem: string | null = null;
  private poller: NodeJS.Timeout | null = null;
  private reloading: Promise<ReloadResult> | null = null;

  constructor(
    private readonly file: KeysFileRepository,
    private readonly logger: Logger,
    private readonly onLoaded: (count: number) => void = () => {},
    /** The rpm of a key whose line sets none (DEFAULT_KEY_RPM); null: such a key has no rpm limit. */
    private readonly defaultRpm: number | null = null,
  ) {}

  get count(): number {
    return this.bySecret.size;
  }

  /** The key as loaded now, by id (settle charges against a key's current limits). */
  byId(id: string): ApiKeyEntry | undefined {
    return this.byKeyId.get(id);
  }

  /** Null when keys are loaded from a clean file; otherwise what a user should fix. */
  problem(): string | null {
    if (this.readProblem) return `keys file: ${this.readProblem}; serving ${this.count} keys from the last good load`;
    if (this.count === 0) return 'no API keys are loaded: every request is refused';
    const { errors } = this.lastResult;
    if (errors.length === 0) return null;
    const lines = errors.map((e) => `line ${e.line}: ${e.message}`).join('; ');
    return `keys file has ${errors.length} bad line(s), ${this.count} keys serving: ${lines}`;
  }

  /** Re-reads the file now; concurrent callers share one read. */
  reload(force = true): Promise<ReloadResult> {
    this.reloading ??= this.readAndApply(force).finally(() => (this.reloading = null));
    return this.reloading;
  }

  /** Re-reads the file every `intervalMs`, applying it only when its text changed. */
  watch(intervalMs: number): void {
    this.poller = setInterval(() => void this.reload(false), intervalMs);
    this.poller.unref();
  }

  stop(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }

  lookup(presented: string): KeyLookup {
    if (this.count === 0) return { kind: 'no_keys_loaded' };
    if (presented === '') return { kind: 'missing' };
    if (!WELL_FORMED_KEY.test(presented)) return { kind: 'malformed' };
    const digest = sha256Hex(presented);
    const key = this.bySecret.get(digest);
    // The map is keyed by a digest, which tells a timing attacker nothing about the secret; the
    // final comparison is constant-time all the same.
    if (!key || !timingSafeEqual(Buffer.from(key.secretSha256, 'hex'), Buffer.from(digest, 'hex'))) {
      return { kind: 'unknown' };
    }
    return { kind: 'found', key };
  }

  private async readAndApply(force: boolean): Promise<ReloadResult> {
    const read = await this.file.read();
    if ('problem' in read) {
      if (this.readProblem !== read.problem) this.logger.error({ file: this.file.path }, `keys file: ${read.problem}`);
      this.readProblem = read.problem;
      this.lastText = null;
      return { keys: this.count, errors: [{ line: 0, message: read.problem }] };
    }
    this.readProblem = null;
    if (!force && read.text === this.lastText) return this.lastResult;
    this.lastText = read.text;
    const parsed = parseKeysFile(read.text);
    const { defaultRpm } = this;
    if (defaultRpm !== null) {
      parsed.keys = parsed.keys.map((k) =>
        k.limits.rpm === null ? { ...k, limits: { ...k.limits, rpm: defaultRpm } } : k,
      );
    }
    this.apply(parsed);
    return this.lastResult;
  }

  private apply({ keys, errors }: { keys: ApiKeyEntry[]; errors: KeysFileError[] }): void {
    for (const error of errors) {
      this.logger.error({ file: this.file.path, line: error.line, keyId: error.keyId }, `keys file: ${error.message}`);
    }
    if (keys.length === 0 && errors.length > 0 && this.count > 0) {
      this.logger.error('keys file has no valid key: keeping the last good keys');
      this.lastResult = { keys: this.count, errors };
      return;
    }
    const previousById = this.byKeyId;
    const next = new Map(keys.map((k) => [k.secretSha256, k]));
    const newIds = new Set(keys.map((k) => k.id));
    for (const error of errors) {
      const kept = error.keyId !== undefined && !newIds.has(error.keyId) ? previousById.get(error.keyId) : undefined;
      if (kept && !next.has(kept.secretSha256)) next.set(kept.secretSha256, kept);
    }
    this.bySecret = next;
    this.byKeyId = new Map([...next.values()].map((k) => [k.id, k]));
    this.lastResult = { keys: next.size, errors };
    this.onLoaded(next.size);
    this.logger.info({ keys: next.size, badLines: errors.length }, 'keys loaded');
  }
}
