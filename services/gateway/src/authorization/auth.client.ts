import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import {
  ApiError,
  isOpenAIErrorBody,
  serviceUnavailable,
  type AuthorizeRequest,
  type AuthorizeResponse,
  type IdentifyRequest,
  type IdentifyResponse,
  type KeysReloadResponse,
  type SettleRequest,
} from '@gguf-gateway/shared';

// The gateway's side of the auth contract (DESIGN.md): one keep-alive connection pool, the
// request id forwarded, auth's refusals relayed to the client unchanged.

export interface AuthReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export type AuthorizeResult =
  { allowed: true; decision: AuthorizeResponse; headers: Record<string, string> } | { allowed: false; error: ApiError };

/** The headers auth sets for the client: every x-ratelimit-* and Retry-After. */
export function clientHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string' && (name.startsWith('x-ratelimit-') || name === 'retry-after')) out[name] = value;
  }
  return out;
}

export class AuthClient {
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly settling = new Set<Promise<void>>();

  constructor(
    private readonly baseUrl: URL,
    private readonly timeoutMs: number,
    /** AUTH_INTERNAL_TOKEN: auth answers its decision endpoints only to a caller holding it. */
    private readonly internalToken: string,
  ) {
    this.transport = baseUrl.protocol === 'https:' ? https : http;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 512, scheduling: 'lifo' });
  }

  async authorize(request: AuthorizeRequest, requestId: string): Promise<AuthorizeResult> {
    const reply = await this.call('POST', '/v1/authorize', request, requestId);
    if (reply.status === 200) {
      return { allowed: true, decision: reply.body as AuthorizeResponse, headers: clientHeaders(reply.headers) };
    }
    return { allowed: false, error: this.relayedError(reply) };
  }

  /** The key's id when auth knows the key; else auth's refusal (401, or 429 for a throttled address). */
  async identify(request: IdentifyRequest, requestId: string): Promise<IdentifyResponse> {
    const reply = await this.call('POST', '/v1/identify', request, requestId);
    if (reply.status === 200) return reply.body as IdentifyResponse;
    throw this.relayedError(reply);
  }

  /**
   * Charges a finished request's tokens and frees its slot. Settle is the only place tokens are
   * charged, so a failed one is tried once more (auth takes a lease once: a repeat charges nothing),
   * and shutdown waits for the ones in flight (`settlesDone`).
   */
  settle(request: SettleRequest, requestId: string): Promise<void> {
    const settling = this.settleOnce(request, requestId).catch(() => this.settleOnce(request, requestId));
    this.settling.add(settling);
    const forget = () => this.settling.delete(settling);
    settling.then(forget, forget);
    return settling;
  }

  /** Resolves once every settle started so far has an answer (or has failed twice). */
  async settlesDone(): Promise<void> {
    await Promise.allSettled([...this.settling]);
  }

  async renew(lease: string, requestId: string): Promise<void> {
    const reply = await this.call('POST', '/v1/renew', { lease }, requestId);
    if (reply.status !== 204 && reply.status !== 200) throw new Error(`auth renew answered ${reply.status}`);
  }

  async reloadKeys(requestId: string): Promise<KeysReloadResponse> {
    const reply = await this.call('POST', '/v1/keys/reload', {}, requestId);
    if (reply.status !== 200) throw this.relayedError(reply);
    return reply.body as KeysReloadResponse;
  }

  /** Readiness: null when auth says it is ready. */
  async problem(): Promise<string | null> {
    try {
      const reply = await this.call('GET', '/readyz', undefined, undefined);
      return reply.status === 200 ? null : `auth is not ready (${reply.status})`;
    } catch (err) {
      return `auth: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`;
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private async settleOnce(request: SettleRequest, requestId: string): Promise<void> {
    const reply = await this.call('POST', '/v1/settle', request, requestId);
    if (reply.status !== 204 && reply.status !== 200) throw new Error(`auth settle answered ${reply.status}`);
  }

  /** Auth's OpenAI-shaped refusal as is; anything else means auth itself is broken. */
  private relayedError(reply: AuthReply): ApiError {
    // Auth refusing the gateway itself is a deployment fault, not the client's key.
    const refusedGateway = isOpenAIErrorBody(reply.body) && reply.body.error.code === 'invalid_internal_token';
    if (reply.status >= 400 && reply.status < 500 && isOpenAIErrorBody(reply.body) && !refusedGateway) {
      return ApiError.fromBody(reply.status, reply.body, clientHeaders(reply.headers));
    }
    const message = refusedGateway
      ? 'The auth service refused the gateway: AUTH_INTERNAL_TOKEN differs between them.'
      : 'The auth service gave an unexpected answer.';
    return new ApiError(502, message, {
      code: 'auth_error',
      type: 'server_error',
    });
  }

  private call(method: string, path: string, body: unknown, requestId: string | undefined): Promise<AuthReply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.internalToken}` };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    if (requestId) headers['x-request-id'] = requestId;
    return new Promise((resolve, reject) => {
      const req = this.transport.request(new URL(path, this.baseUrl), {
        method,
        headers,
        agent: this.agent,
        timeout: this.timeoutMs,
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      // The client sees a generic 503; the cause (an internal address) stays in our logs.
      req.on('error', (err) =>
        reject(
          Object.assign(serviceUnavailable('The auth service is unavailable; retry shortly.', 1, 'auth_unavailable'), {
            cause: err,
          }),
        ),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          if (text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      });
      req.end(payload);
    });
  }
}
