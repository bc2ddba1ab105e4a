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
 * The loaded keys, swapped as a whole on each reload. A readable file is applied as it is: a key
 * whose line is gone or no longer parses is gone (that is how a key is revoked, and a broken edit
 * must not leave an old secret working). A file that cannot be read, or that has bad lines and not
 * one good one (a write caught halfway), keeps the last good set for `graceMs` and then serves no
 * key until it is fixed: a deleted file revokes every key, late but surely.
 */
export class ApiKeysService {
  private bySecret = new Map<string, ApiKeyEntry>();
  private byKeyId = new Map<string, ApiKeyEntry>();
  private lastText: string | null = null;
  /** The text whose bad lines were logged last, so a file re-read at every poll is not logged each time. */
  private lastLoggedText: string | null = null;
  private lastResult: ReloadResult = { keys: 0, errors: [] };
  private readProblem: string | null = null;
  /** When the file stopped giving a usable key set; null while it gives one. */
  private unusableSince: number | null = null;
  private poller: NodeJS.Timeout | null = null;
  private reloading: Promise<ReloadResult> | null = null;

  constructor(
    private readonly file: KeysFileRepository,
    private readonly logger: Logger,
    private readonly onLoaded: (count: number) => void = () => {},
    /** KEYS_FILE_GRACE_MS. */
    private readonly graceMs = 30_000,
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
    if (this.readProblem) {
      return this.count > 0
        ? `keys file: ${this.readProblem}; serving ${this.count} keys from the last good load for at most ${this.graceMs} ms (KEYS_FILE_GRACE_MS)`
        : `keys file: ${this.readProblem}; no key is served until it is fixed`;
    }
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
      this.unusable(read.problem);
      return { keys: this.count, errors: [{ line: 0, message: read.problem }] };
    }
    if (!force && read.text === this.lastText) return this.lastResult;
    const parsed = parseKeysFile(read.text);
    if (read.text !== this.lastLoggedText) {
      for (const error of parsed.errors) {
        this.logger.error(
          { file: this.file.path, line: error.line, keyId: error.keyId },
          `keys file: ${error.message}`,
        );
      }
    }
    this.lastLoggedText = read.text;
    if (parsed.keys.length === 0 && parsed.errors.length > 0) {
      // Read again at every poll (lastText stays null), so the grace period runs out even if the text stays.
      this.lastText = null;
      this.lastResult = { keys: this.count, errors: parsed.errors };
      this.unusable(`has ${parsed.errors.length} bad line(s) and no valid one`);
      return this.lastResult;
    }
    this.lastText = read.text;
    this.readProblem = null;
    this.unusableSince = null;
    const { defaultRpm } = this;
    const keys =
      defaultRpm === null
        ? parsed.keys
        : parsed.keys.map((k) => (k.limits.rpm === null ? { ...k, limits: { ...k.limits, rpm: defaultRpm } } : k));
    this.apply(keys, parsed.errors);
    return this.lastResult;
  }

  /** The file gives no usable key set: the last good one serves until the grace period runs out. */
  private unusable(problem: string): void {
    if (this.readProblem !== problem) this.logger.error({ file: this.file.path }, `keys file: ${problem}`);
    this.readProblem = problem;
    this.lastText = null;
    this.unusableSince ??= Date.now();
    if (this.count > 0 && Date.now() - this.unusableSince >= this.graceMs) {
      this.logger.error(
        { file: this.file.path, graceMs: this.graceMs },
        'keys file unusable for longer than KEYS_FILE_GRACE_MS: no key is served until it is fixed',
      );
      this.apply([], this.lastResult.errors);
    }
  }

  private apply(keys: ApiKeyEntry[], errors: KeysFileError[]): void {
    this.bySecret = new Map(keys.map((k) => [k.secretSha256, k]));
    this.byKeyId = new Map(keys.map((k) => [k.id, k]));
    this.lastResult = { keys: keys.length, errors };
    this.onLoaded(keys.length);
    this.logger.info({ keys: keys.length, badLines: errors.length }, 'keys loaded');
  }
}
