import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createRedis,
  listen,
  type AuthorizeRequest,
  type PriceTable,
} from '@gguf-gateway/shared';
import {
  deleteRedisPrefix,
  LogCapture,
  TEST_AUTH_INTERNAL_TOKEN,
  testRedisPrefix,
  testSettings,
} from '@gguf-gateway/testkit';
import { buildAuth, REDIS_COMMAND_TIMEOUT_MS, type AuthParts } from '../../src/wiring.js';

export interface AuthInstance {
  url: string;
  logs: LogCapture;
  redis: Redis;
  parts: AuthParts;
  close(): Promise<void>;
}

export interface InstanceOptions {
  redisUrl: string;
  prefix: string;
  keysFile: string;
  prices?: PriceTable;
  leaseTtlSec?: number;
  failedAuthMax?: number;
  grantTtlMs?: number;
  keysFileGraceMs?: number;
}

/** A real auth app on a free port, on real Redis, logging into a capture. */
export async function startAuth(options: InstanceOptions): Promise<AuthInstance> {
  const logs = new LogCapture();
  const logger = createLogger({ service: 'auth', level: 'debug', destination: logs });
  const redis = createRedis(options.redisUrl, 'request-path', { commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
  redis.on('error', (err) => logger.warn({ err }, 'redis error'));
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  const parts = await buildAuth({
    logger,
    registry: createMetricsRegistry('auth'),
    redis,
    redisKeyPrefix: options.prefix,
    keysFile: options.keysFile,
    keysFilePollMs: 250, // the production default (KEYS_FILE_POLL_MS)
    keysFileGraceMs: options.keysFileGraceMs,
    prices: options.prices ?? [],
    leaseTtlSec: options.leaseTtlSec ?? 60,
    failedAuthMax: options.failedAuthMax ?? 1000,
    failedAuthWindowSec: 60,
    grantTtlMs: options.grantTtlMs,
    internalToken: TEST_AUTH_INTERNAL_TOKEN,
  });
  const server: Server = await listen(parts.app, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${boundPort(server)}`,
    logs,
    redis,
    parts,
    async close() {
      parts.stop();
      await closeServer(server);
      redis.disconnect();
    },
  };
}

export interface SuiteAuth {
  auth: AuthInstance;
  keysFile: KeysFile;
}

/**
 * One auth for the describe block it is called in, over its own keys file (`keys`) and Redis
 * prefix on the test Redis: started before its tests, stopped and cleaned up after them.
 */
export function authForSuite(
  keys: string,
  options: Omit<InstanceOptions, 'redisUrl' | 'prefix' | 'keysFile'> = {},
): SuiteAuth {
  const prefix = testRedisPrefix();
  const suite = {} as SuiteAuth;
  before(async () => {
    suite.keysFile = await KeysFile.create(keys);
    suite.auth = await startAuth({
      ...options,
      redisUrl: testSettings.TEST_REDIS_URL,
      prefix,
      keysFile: suite.keysFile.path,
    });
  });
  after(async () => {
    await suite.auth?.close();
    await suite.keysFile?.remove();
    await deleteRedisPrefix(prefix);
  });
  return suite;
}

/** Every field any auth answer may carry. */
export interface AnswerBody {
  error?: { message: string; type: string; code: string | null; param: string | null };
  keyId?: string;
  scopes?: string[];
  lease?: string;
  leaseTtlSec?: number;
  grant?: { ttlMs: number };
  remaining?: { requests: number | null; tokens: number | null };
  keys?: number;
  errors?: { line: number; message: string }[];
  status?: string;
  checks?: Record<string, string>;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: AnswerBody;
  text: string;
}

/** A POST as the gateway makes it, holding the internal token unless `token` says otherwise (null: none). */
export async function post(
  url: string,
  path: string,
  body: unknown,
  token: string | null = TEST_AUTH_INTERNAL_TOKEN,
): Promise<Answer> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? (JSON.parse(text) as AnswerBody) : {} };
}

export function authorize(url: string, request: Partial<AuthorizeRequest> & { key: string }): Promise<Answer> {
  return post(url, '/v1/authorize', { model: 'tiny', route: 'chat', ip: '10.0.0.1', ...request });
}

/** A keys file in a temporary folder of its own, rewritten the way the CLI does (temp + rename). */
export class KeysFile {
  private constructor(
    readonly dir: string,
    readonly path: string,
  ) {}

  static async create(text: string): Promise<KeysFile> {
    const dir = await mkdtemp(join(tmpdir(), 'gg-auth-'));
    const file = new KeysFile(dir, join(dir, 'api_keys'));
    await file.replace(text);
    return file;
  }

  async replace(text: string): Promise<void> {
    const temp = `${this.path}.tmp`;
    await writeFile(temp, text, { mode: 0o600 });
    await rename(temp, this.path);
  }

  /** An editor saving in place: same file, new contents. */
  async editInPlace(text: string): Promise<void> {
    await writeFile(this.path, text);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
