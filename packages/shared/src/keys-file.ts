import { createHash } from 'node:crypto';
import { globToRegExp } from './glob.js';
import { API_ROUTES, type KeyLimits } from './contracts.js';

// The API keys file (DESIGN.md), read by the auth service, written by the CLI and checked by the
// orchestrator. One key per line:
//
//   key_id:secret[:rpm[:expires]] [rpm=N] [tpm=N] [concurrency=N] [daily_tokens=N]
//       [budget_usd_day=X] [budget_usd_month=X] [models=glob|glob] [scope=admin] [expires=ISO-8601]
//       [routes=chat|embeddings|...]   (the inference routes the key may call; default: all)
//
// `secret` is the plaintext key or `sha256$<64 hex>`. `#` starts a comment line. A bad line is
// reported by line number and key id, never with its secret.

export interface ApiKeyEntry {
  id: string;
  /** sha256 of the secret, hex: what a presented key is compared against. */
  secretSha256: string;
  limits: KeyLimits;
  /** Model globs as written; empty means every model. */
  models: string[];
  modelMatchers: RegExp[];
  scopes: string[];
  /** Inference routes (API_ROUTES names) the key may call; empty means every route. */
  routes: string[];
  expiresAt: Date | null;
  /** 1-based line number in the file it came from. */
  line: number;
}

export interface KeysFileError {
  line: number;
  message: string;
  /** The key id of the bad line when it could be read, so that logs name the key. */
  keyId?: string;
}

export interface ParsedKeysFile {
  keys: ApiKeyEntry[];
  errors: KeysFileError[];
}

export const MIN_SECRET_LENGTH = 16;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256_SECRET = /^sha256\$([0-9a-fA-F]{64})$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const SCOPES = new Set(['admin']);

type IntegerLimit = 'rpm' | 'tpm' | 'concurrency' | 'dailyTokens';
type UsdLimit = 'budgetUsdDay' | 'budgetUsdMonth';

const INTEGER_OPTIONS: Record<string, IntegerLimit> = {
  rpm: 'rpm',
  tpm: 'tpm',
  concurrency: 'concurrency',
  daily_tokens: 'dailyTokens',
};
const USD_OPTIONS: Record<string, UsdLimit> = { budget_usd_day: 'budgetUsdDay', budget_usd_month: 'budgetUsdMonth' };
const OPTION_NAMES = [
  ...Object.keys(INTEGER_OPTIONS),
  ...Object.keys(USD_OPTIONS),
  'models',
  'scope',
  'routes',
  'expires',
];
const ROUTE_NAMES = new Set<string>(API_ROUTES);

class LineError extends Error {}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The `sha256$<hex>` form of a secret, so plaintext need not sit on disk. */
export function hashSecret(secret: string): string {
  return `sha256$${sha256Hex(secret)}`;
}

/**
 * ISO-8601 date or date-time. With an offset (`Z`, `+02:00`) it is that instant; without one it is
 * read as UTC. A bare date means the key is valid through that whole UTC day.
 */
export function parseExpiry(text: string): Date {
  const m = ISO_DATE.exec(text);
  if (!m) throw new LineError(`expires '${text}' is not an ISO-8601 date (e.g. 2026-12-31T23:59:59Z)`);
  const [, y, mo, d, h = '0', mi = '0', s = '0', , offset] = m;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  const utc = new Date(Date.UTC(...fields));
  const valid =
    utc.getUTCFullYear() === fields[0] &&
    utc.getUTCMonth() === fields[1] &&
    utc.getUTCDate() === fields[2] &&
    utc.getUTCHours() === fields[3] &&
    utc.getUTCMinutes() === fields[4] &&
    utc.getUTCSeconds() === fields[5];
  if (!valid) throw new LineError(`expires '${text}' is not a real date`);
  if (m[4] === undefined) return new Date(utc.getTime() + 86_400_000);
  // Real offsets run from -12:00 to +14:00; one beyond (`+99:99`) is a typo, and `new Date` would
  // make it an Invalid Date that compares as never expired.
  const zone = offset ? /^([+-])(\d{2}):?(\d{2})$/.exec(offset) : null;
  if (zone && (Number(zone[2]) > 14 || Number(zone[3]) > 59)) {
    throw new LineError(`expires '${text}' has an offset that is not a real one (-12:00 to +14:00)`);
  }
  const withZone = offset ? text : `${text}Z`;
  const expires = new Date(withZone.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(expires.getTime())) throw new LineError(`expires '${text}' is not a real date`);
  return expires;
}

function parsePositiveInteger(name: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new LineError(`${name} must be a whole number of at least 1, got '${text}'`);
  }
  return Number(text);
}

function parseUsd(name: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text)) throw new LineError(`${name} must be an amount in USD like 12.50, got '${text}'`);
  return Number(text);
}

function emptyLimits(): KeyLimits {
  return { rpm: null, tpm: null, concurrency: null, dailyTokens: null, budgetUsdDay: null, budgetUsdMonth: null };
}

interface Draft {
  limits: KeyLimits;
  models: string[];
  scopes: string[];
  routes: string[];
  expiresAt: Date | null;
  seen: Set<string>;
}

function applyOption(draft: Draft, name: string, value: string): void {
  if (draft.seen.has(name)) throw new LineError(`${name} is given twice`);
  draft.seen.add(name);
  const integer = INTEGER_OPTIONS[name];
  const usd = USD_OPTIONS[name];
  if (integer) draft.limits[integer] = parsePositiveInteger(name, value);
  else if (usd) draft.limits[usd] = parseUsd(name, value);
  else if (name === 'models') {
    draft.models = value.split('|').filter(Boolean);
    if (draft.models.length === 0) throw new LineError('models needs at least one glob');
  } else if (name === 'scope') {
    draft.scopes = value.split('|').filter(Boolean);
    const unknown = draft.scopes.find((s) => !SCOPES.has(s));
    if (unknown !== undefined || draft.scopes.length === 0) {
      throw new LineError(`scope '${value}' is not one of: ${[...SCOPES].join(', ')}`);
    }
  } else if (name === 'routes') draft.routes = parseRoutes(value);
  else if (name === 'expires') draft.expiresAt = parseExpiry(value);
  else {
    // Named only when it looks like an option name, never when it could be a piece of a secret.
    const shown = /^[a-z_]{1,24}$/.test(name) ? ` '${name}'` : '';
    throw new LineError(`unknown option${shown} (known: ${OPTION_NAMES.join(', ')})`);
  }
}

function parseRoutes(value: string): string[] {
  const routes = value.split('|').filter(Boolean);
  const unknown = routes.find((r) => !ROUTE_NAMES.has(r));
  if (unknown !== undefined || routes.length === 0) {
    throw new LineError(`routes '${value}' is not a list of: ${API_ROUTES.join(', ')}`);
  }
  return routes;
}

function parseSecret(secret: string): string {
  const hashed = SHA256_SECRET.exec(secret);
  if (hashed) return hashed[1]!.toLowerCase();
  if (secret.startsWith('sha256$')) throw new LineError('secret starts with sha256$ but is not 64 hex digits');
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new LineError(`secret is shorter than ${MIN_SECRET_LENGTH} characters`);
  }
  return sha256Hex(secret);
}

/**
 * A positional field after the secret is reported without its value: a secret that contains ':'
 * spills into these fields, and its tail must not reach a log.
 */
function positional(field: 'rpm' | 'expires', parse: () => void): void {
  try {
    parse();
  } catch (err) {
    if (!(err instanceof LineError)) throw err;
    const want = field === 'rpm' ? 'a whole number of at least 1' : 'an ISO-8601 date';
    throw new LineError(`the ${field} field after the secret must be ${want} (a secret may not contain ':')`);
  }
}

/** One non-comment line into an entry; throws LineError naming what is wrong (never the secret). */
function parseLine(text: string, line: number, setId: (id: string) => void): ApiKeyEntry {
  const [head = '', ...options] = text.split(/\s+/);
  const fields = head.split(':');
  if (fields.length < 2) throw new LineError("expected 'key_id:secret', found no ':'");
  const [id = '', secret = '', rpm, ...expiresParts] = fields;
  if (!KEY_ID.test(id)) {
    throw new LineError('key id must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
  }
  // The id is named in errors only once the secret is known good: a line that left the id out has
  // its secret where the id should be.
  const secretSha256 = parseSecret(secret);
  setId(id);
  const draft: Draft = {
    limits: emptyLimits(),
    models: [],
    scopes: [],
    routes: [],
    expiresAt: null,
    seen: new Set(),
  };
  if (rpm !== undefined && rpm !== '') positional('rpm', () => applyOption(draft, 'rpm', rpm));
  const expires = expiresParts.join(':');
  if (expiresParts.length > 0) positional('expires', () => applyOption(draft, 'expires', expires));
  options.forEach((option, index) => {
    const eq = option.indexOf('=');
    if (eq <= 0) {
      throw new LineError(`option ${index + 1} after the secret is not name=value (a secret may not contain spaces)`);
    }
    applyOption(draft, option.slice(0, eq), option.slice(eq + 1));
  });
  return {
    id,
    secretSha256,
    limits: draft.limits,
    models: draft.models,
    modelMatchers: draft.models.map(globToRegExp),
    scopes: draft.scopes,
    routes: draft.routes,
    expiresAt: draft.expiresAt,
    line,
  };
}

/** Every line into keys and per-line errors: one bad line never stops the others from loading. */
export function parseKeysFile(text: string): ParsedKeysFile {
  const keys: ApiKeyEntry[] = [];
  const errors: KeysFileError[] = [];
  const lineById = new Map<string, number>();
  const keyBySecret = new Map<string, ApiKeyEntry>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    let keyId: string | undefined;
    try {
      const entry = parseLine(trimmed, line, (id) => (keyId = id));
      const firstLine = lineById.get(entry.id);
      if (firstLine !== undefined) throw new LineError(`duplicate key id (first on line ${firstLine})`);
      const sameSecret = keyBySecret.get(entry.secretSha256);
      if (sameSecret) {
        throw new LineError(`same secret as key '${sameSecret.id}' on line ${sameSecret.line}`);
      }
      lineById.set(entry.id, line);
      keyBySecret.set(entry.secretSha256, entry);
      keys.push(entry);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      const prefix = keyId ? `key '${keyId}': ` : '';
      errors.push({ line, message: `${prefix}${err.message}`, ...(keyId ? { keyId } : {}) });
    }
  });
  return { keys, errors };
}

export interface KeyLineFields {
  id: string;
  /** Plaintext or already `sha256$<hex>`; plaintext is hashed before it is written. */
  secret: string;
  limits?: Partial<KeyLimits>;
  models?: string[];
  scopes?: string[];
  routes?: string[];
  expiresAt?: Date | null;
}

const LIMIT_OPTIONS: [keyof KeyLimits, string][] = [
  ['rpm', 'rpm'],
  ['tpm', 'tpm'],
  ['concurrency', 'concurrency'],
  ['dailyTokens', 'daily_tokens'],
  ['budgetUsdDay', 'budget_usd_day'],
  ['budgetUsdMonth', 'budget_usd_month'],
];

/** One keys-file line, secret always hashed, options in a fixed order. */
export function formatKeyLine({
  id,
  secret,
  limits = {},
  models = [],
  scopes = [],
  routes = [],
  expiresAt,
}: KeyLineFields): string {
  const stored = SHA256_SECRET.test(secret) ? secret : hashSecret(secret);
  const parts = [`${id}:${stored}`];
  for (const [field, option] of LIMIT_OPTIONS) {
    const value = limits[field];
    if (value !== null && value !== undefined) parts.push(`${option}=${value}`);
  }
  if (models.length > 0) parts.push(`models=${models.join('|')}`);
  if (scopes.length > 0) parts.push(`scope=${scopes.join('|')}`);
  if (routes.length > 0) parts.push(`routes=${routes.join('|')}`);
  if (expiresAt) parts.push(`expires=${expiresAt.toISOString()}`);
  return parts.join(' ');
}

/** The fields of a parsed entry, for rewriting its line (the secret stays hashed). */
export function entryLineFields(entry: ApiKeyEntry): KeyLineFields {
  return {
    id: entry.id,
    secret: `sha256$${entry.secretSha256}`,
    limits: entry.limits,
    models: entry.models,
    scopes: entry.scopes,
    routes: entry.routes,
    expiresAt: entry.expiresAt,
  };
}
