import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { unreadableReason } from './file-access.js';

export { z };

type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid environment variables: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads a secret from `NAME` or from the file named by `NAME_FILE` (Docker secrets), trimmed.
 * Both set is an error: which one wins would be a guess.
 */
function resolveFileVariables(env: Env, names: readonly string[], problems: string[]): Env {
  const resolved: Env = { ...env };
  for (const name of names) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (env[name]) {
      problems.push(`${name} and ${name}_FILE are both set: keep one`);
      continue;
    }
    try {
      resolved[name] = readFileSync(file, 'utf8').trim();
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file} (${unreadableReason(file, err)})`);
    }
  }
  return resolved;
}

export interface LoadConfigOptions {
  /** Variables that may also come from `<NAME>_FILE`. */
  fileVariables?: readonly string[];
}

/**
 * Parses the environment against a service's schema. Every missing or invalid variable is
 * reported in one ConfigError, so a user fixes them all in one go.
 */
export function loadConfig<T extends z.ZodRawShape>(
  shape: T,
  env: Env = process.env,
  options: LoadConfigOptions = {},
): z.infer<z.ZodObject<T>> {
  const problems: string[] = [];
  const resolved = resolveFileVariables(env, options.fileVariables ?? [], problems);
  const parsed = z.object(shape).safeParse(resolved);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = issue.path.join('.');
      const value = resolved[name];
      problems.push(value === undefined || value === '' ? `${name}: required` : `${name}: ${issue.message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data as z.infer<z.ZodObject<T>>;
}

/** At process start: print the one message naming every bad variable, and exit non-zero. */
export function loadConfigOrExit<T extends z.ZodRawShape>(
  shape: T,
  options: LoadConfigOptions = {},
  env: () => Env = () => process.env,
): z.infer<z.ZodObject<T>> {
  try {
    return loadConfig(shape, env(), options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

// Building blocks for the service schemas, so each variable means the same thing everywhere.
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  url: () => z.string().url(),
  optionalUrl: () => z.string().url().optional(),
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
  millis: (fallback: number) => z.coerce.number().int().positive().default(fallback),
  path: () => z.string().min(1),
  /** A generated secret shared between processes (give its `_FILE` twin in `fileVariables`). */
  secret: () => z.string().min(16, 'must be at least 16 characters (make one: openssl rand -hex 24)'),
  /** An address to listen on; the all-in-one supervisor gives internal services 127.0.0.1. */
  host: () => z.string().min(1).default('0.0.0.0'),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'])
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  list: () =>
    z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ),
};

/** Variables every service reads. */
export const commonConfig = {
  LOG_LEVEL: env.logLevel(),
  /** Prefix for every Redis key this deployment writes (tests give each run its own). */
  REDIS_KEY_PREFIX: z.string().default(''),
};

/** The typed config a schema describes. */
export type ConfigOf<T extends z.ZodRawShape> = z.infer<z.ZodObject<T>>;
