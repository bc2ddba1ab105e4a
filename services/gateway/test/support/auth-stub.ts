// A STUB of the auth service for the gateway's own tests and bench: it follows the gateway <->
// auth contract (DESIGN.md) with an in-memory key table, an rpm counter per key (in Redis when
// given one, like the real service) and recorded settles. The real service lives in services/auth.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { AuthorizeRequest, AuthorizeResponse, IdentifyRequest, SettleRequest } from '@gguf-gateway/shared';
import { TEST_AUTH_INTERNAL_TOKEN } from '@gguf-gateway/testkit';

export interface StubKey {
  id: string;
  secret: string;
  rpm?: number;
  scopes?: string[];
  /** Exact model names this key may use; all when absent. */
  models?: string[];
}

export interface AuthStubOptions {
  keys: StubKey[];
  redis?: Redis;
  redisPrefix?: string;
  leaseTtlSec?: number;
}

type Reply = { status: number; headers?: Record<string, string>; body?: unknown };

const error = (status: number, code: string, message: string, headers: Record<string, string> = {}): Reply => ({
  status,
  headers,
  body: {
    error: {
      message,
      type: status === 429 ? 'rate_limit_error' : status === 403 ? 'permission_error' : 'authentication_error',
      param: null,
      code,
    },
  },
});

export class AuthStub {
  readonly authorizations: AuthorizeRequest[] = [];
  readonly identifications: IdentifyRequest[] = [];
  readonly settles: SettleRequest[] = [];
  readonly renews: string[] = [];
  /** The x-request-id of every call, to check the gateway forwards it. */
  readonly requestIds: string[] = [];
  reloads = 0;
  /** Holds every authorize answer this long (a slow auth service). */
  authorizeDelayMs = 0;
  /** Holds every settle answer this long. */
  settleDelayMs = 0;
  private keys: StubKey[];
  private readonly windows = new Map<string, number>();
  private readonly openLeases = new Set<string>();
  private leaseSeq = 0;
  private server!: Server;

  private constructor(private readonly options: AuthStubOptions) {
    this.keys = options.keys;
  }

  static async start(options: AuthStubOptions, port = 0): Promise<AuthStub> {
    const stub = new AuthStub(options);
    stub.server = createServer((req, res) => void stub.handle(req, res));
    stub.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => stub.server.listen(port, '127.0.0.1', resolve));
    return stub;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Leases authorized and not settled yet. */
  get leasesOpen(): number {
    return this.openLeases.size;
  }

  setKeys(keys: StubKey[]): void {
    this.keys = keys;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown) : null;
    this.requestIds.push(String(req.headers['x-request-id'] ?? ''));
    let reply: Reply;
    // Like the real service: everything but readiness needs the internal token.
    if (req.url !== '/readyz' && req.headers.authorization !== `Bearer ${TEST_AUTH_INTERNAL_TOKEN}`) {
      reply = error(401, 'invalid_internal_token', 'This endpoint is internal.');
    } else if (req.method === 'POST' && req.url === '/v1/authorize')
      reply = await this.authorize(body as AuthorizeRequest);
    else if (req.method === 'POST' && req.url === '/v1/identify') reply = this.identify(body as IdentifyRequest);
    else if (req.method === 'POST' && req.url === '/v1/settle') {
      if (this.settleDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.settleDelayMs));
      reply = this.settle(body as SettleRequest);
    } else if (req.method === 'POST' && req.url === '/v1/renew') {
      this.renews.push((body as { lease: string }).lease);
      reply = { status: 204 };
    } else if (req.method === 'POST' && req.url === '/v1/keys/reload') {
      this.reloads += 1;
      reply = { status: 200, body: { keys: this.keys.length, errors: [] } };
    } else if (req.method === 'GET' && req.url === '/readyz') reply = { status: 200, body: { status: 'ready' } };
    else reply = error(404, 'unknown_route', 'not found');
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
  }

  private identify(request: IdentifyRequest): Reply {
    this.identifications.push(request);
    if (this.keys.length === 0) return error(401, 'invalid_api_key', 'No API keys are loaded on this server.');
    if (request.key === '') return error(401, 'invalid_api_key', 'Missing API key: send Authorization: Bearer <key>.');
    const key = this.keys.find((k) => k.secret === request.key);
    if (!key) return error(401, 'invalid_api_key', 'Incorrect API key provided.');
    return { status: 200, body: { keyId: key.id } };
  }

  private async authorize(request: AuthorizeRequest): Promise<Reply> {
    this.authorizations.push(request);
    if (this.authorizeDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.authorizeDelayMs));
    if (this.keys.length === 0) return error(401, 'invalid_api_key', 'No API keys are loaded on this server.');
    if (request.key === '') return error(401, 'invalid_api_key', 'Missing API key: send Authorization: Bearer <key>.');
    const key = this.keys.find((k) => k.secret === request.key);
    if (!key) return error(401, 'invalid_api_key', 'Incorrect API key provided.');
    if (request.route === 'admin' && !(key.scopes ?? []).includes('admin')) {
      return error(403, 'insufficient_scope', 'This key does not have the admin scope.');
    }
    if (request.model !== null && key.models && !key.models.includes(request.model)) {
      return error(403, 'model_not_allowed', `This key may not use the model '${request.model}'.`);
    }
    const headers: Record<string, string> = {};
    let remaining: number | null = null;
    if (key.rpm !== undefined) {
      const window = Math.floor(Date.now() / 60_000);
      const used = await this.count(`${key.id}:${window}`);
      const resetSec = 60 - Math.floor((Date.now() / 1000) % 60);
      remaining = Math.max(0, key.rpm - used);
      headers['x-ratelimit-limit-requests'] = String(key.rpm);
      headers['x-ratelimit-remaining-requests'] = String(remaining);
      headers['x-ratelimit-reset-requests'] = `${resetSec}s`;
      if (used > key.rpm) {
        return error(429, 'rate_limit_exceeded', `Rate limit reached: ${key.rpm} requests per minute.`, {
          ...headers,
          'retry-after': String(resetSec),
        });
      }
    }
    const lease = `lease-${++this.leaseSeq}`;
    this.openLeases.add(lease);
    const decision: AuthorizeResponse = {
      keyId: key.id,
      scopes: key.scopes ?? [],
      limits: {
        rpm: key.rpm ?? null,
        tpm: null,
        concurrency: null,
        dailyTokens: null,
        budgetUsdDay: null,
        budgetUsdMonth: null,
      },
      remaining: { requests: remaining, tokens: null },
      lease,
      leaseTtlSec: this.options.leaseTtlSec ?? 60,
    };
    return { status: 200, headers, body: decision };
  }

  private settle(request: SettleRequest): Reply {
    if (this.openLeases.delete(request.lease)) this.settles.push(request);
    return { status: 204 };
  }

  private async count(window: string): Promise<number> {
    const { redis, redisPrefix = '' } = this.options;
    if (redis) {
      const key = `${redisPrefix}auth-stub:rpm:${window}`;
      const [[, used]] = (await redis.multi().incr(key).expire(key, 120).exec()) as [[null, number]];
      return used;
    }
    const used = (this.windows.get(window) ?? 0) + 1;
    this.windows.set(window, used);
    return used;
  }
}
