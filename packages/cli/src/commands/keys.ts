import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, z } from '@gguf-gateway/shared/config';
import {
  entryLineFields,
  formatKeyLine,
  hashSecret,
  parseKeysFile,
  type ApiKeyEntry,
} from '@gguf-gateway/shared/keys-file';
import { readKeysFile, writeKeysFile } from '../keys-file.store.js';

export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** The environment to read API_KEYS_FILE from; the process's own when absent. */
  env?: Record<string, string | undefined>;
}

const USAGE = `usage: gguf-gateway keys <command> [--file PATH]   (PATH defaults to $API_KEYS_FILE)
  create <id> [--rpm N] [--tpm N] [--concurrency N] [--daily-tokens N] [--budget-usd-day X]
              [--budget-usd-month X] [--models 'glob|glob'] [--scope admin] [--expires ISO-8601]
                      prints the new key once and writes only its sha256 to the file
  list                the keys and their limits (never a secret)
  revoke <id>         removes the key; the auth service stops accepting it within a second
  rotate <id>         a new secret for the key, same limits; prints it once
`;

// --flag name on the command line -> option name in the keys file.
const LIMIT_FLAGS: Record<string, string> = {
  rpm: 'rpm',
  tpm: 'tpm',
  concurrency: 'concurrency',
  'daily-tokens': 'daily_tokens',
  'budget-usd-day': 'budget_usd_day',
  'budget-usd-month': 'budget_usd_month',
  models: 'models',
  scope: 'scope',
  expires: 'expires',
};

class UsageError extends Error {}

function newSecret(): string {
  return `sk-gg-${randomBytes(24).toString('base64url')}`;
}

function ensureTrailingNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

/** Whether a line number of `text` holds key `id` (valid or broken). */
function linesOfKey(text: string, id: string): (line: number) => boolean {
  const { keys, errors } = parseKeysFile(text);
  const lines = new Set([
    ...keys.filter((k) => k.id === id).map((k) => k.line),
    ...errors.filter((e) => e.keyId === id).map((e) => e.line),
  ]);
  return (line) => lines.has(line);
}

function describeKey(key: ApiKeyEntry, now: Date): string[] {
  const { limits } = key;
  const show = (value: number | null) => (value === null ? '-' : String(value));
  const expires = key.expiresAt ? `${key.expiresAt.toISOString()}${key.expiresAt <= now ? ' (expired)' : ''}` : '-';
  return [
    key.id,
    show(limits.rpm),
    show(limits.tpm),
    show(limits.concurrency),
    show(limits.dailyTokens),
    show(limits.budgetUsdDay),
    show(limits.budgetUsdMonth),
    key.models.join('|') || '*',
    key.scopes.join('|') || '-',
    expires,
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function create(
  path: string,
  id: string | undefined,
  flags: Record<string, string | undefined>,
  io: CommandIo,
): Promise<number> {
  if (!id) throw new UsageError('keys create needs a key id');
  const current = await readKeysFile(path);
  const existing = parseKeysFile(current);
  if (existing.keys.some((k) => k.id === id) || existing.errors.some((e) => e.keyId === id)) {
    io.err(`key '${id}' already exists in ${path}: revoke or rotate it instead\n`);
    return 1;
  }
  const secret = newSecret();
  const options = Object.entries(LIMIT_FLAGS)
    .filter(([flag]) => flags[flag] !== undefined)
    .map(([flag, option]) => `${option}=${flags[flag]}`);
  const parsed = parseKeysFile([`${id}:${hashSecret(secret)}`, ...options].join(' '));
  const entry = parsed.keys[0];
  if (!entry) {
    io.err(`cannot create key '${id}': ${parsed.errors.map((e) => e.message).join('; ')}\n`);
    return 2;
  }
  await writeKeysFile(path, `${ensureTrailingNewline(current)}${formatKeyLine(entryLineFields(entry))}\n`);
  io.err(`created key '${id}' in ${path}; it is shown once, store it now:\n`);
  io.out(`${secret}\n`);
  return 0;
}

async function list(path: string, io: CommandIo): Promise<number> {
  const { keys, errors } = parseKeysFile(await readKeysFile(path));
  const header = [
    'id',
    'rpm',
    'tpm',
    'concurrency',
    'daily_tokens',
    'usd_day',
    'usd_month',
    'models',
    'scope',
    'expires',
  ];
  const now = new Date();
  io.out(`${table([header, ...keys.map((k) => describeKey(k, now))])}\n`);
  for (const error of errors) io.err(`${path}: line ${error.line}: ${error.message}\n`);
  return errors.length > 0 ? 1 : 0;
}

async function revoke(path: string, id: string | undefined, io: CommandIo): Promise<number> {
  if (!id) throw new UsageError('keys revoke needs a key id');
  const text = await readKeysFile(path);
  const isKeyLine = linesOfKey(text, id);
  const lines = text.split('\n');
  const kept = lines.filter((_, index) => !isKeyLine(index + 1));
  if (kept.length === lines.length) {
    io.err(`no key '${id}' in ${path}\n`);
    return 1;
  }
  await writeKeysFile(path, kept.join('\n'));
  io.err(`revoked key '${id}'\n`);
  return 0;
}

async function rotate(path: string, id: string | undefined, io: CommandIo): Promise<number> {
  if (!id) throw new UsageError('keys rotate needs a key id');
  const text = await readKeysFile(path);
  const entry = parseKeysFile(text).keys.find((k) => k.id === id);
  if (!entry) {
    io.err(`no valid key '${id}' in ${path}\n`);
    return 1;
  }
  const secret = newSecret();
  const lines = text.split('\n');
  lines[entry.line - 1] = formatKeyLine({ ...entryLineFields(entry), secret: hashSecret(secret) });
  await writeKeysFile(path, lines.join('\n'));
  io.err(`rotated key '${id}'; the old secret no longer works. The new one is shown once:\n`);
  io.out(`${secret}\n`);
  return 0;
}

/** `gguf-gateway keys ...`, with its output and environment passed in so tests can run it in-process. */
export async function runKeys(args: string[], io: CommandIo): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        file: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      },
    });
    const [command, id, ...extra] = positionals;
    if (values.help || !command) {
      io.out(USAGE);
      return values.help ? 0 : 2;
    }
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const env = loadConfig({ API_KEYS_FILE: z.string().min(1).optional() }, io.env);
    const path = (values.file as string | undefined) ?? env.API_KEYS_FILE;
    if (!path) throw new UsageError('name the keys file with --file or API_KEYS_FILE');
    const flags = values as Record<string, string | undefined>;
    switch (command) {
      case 'create':
        return await create(path, id, flags, io);
      case 'list':
        return await list(path, io);
      case 'revoke':
        return await revoke(path, id, io);
      case 'rotate':
        return await rotate(path, id, io);
      default:
        throw new UsageError(`unknown keys command '${command}'`);
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof ConfigError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      io.err(`${(err as Error).message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

export const keysCommand = {
  summary: 'create, list, revoke and rotate API keys in the keys file',
  run: (args: string[]) =>
    runKeys(args, {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
    }),
};
