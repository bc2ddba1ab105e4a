// A fast local fake of an OpenAI-compatible backend (llama.cpp's wire format) for the gateway's
// tests and bench. Behaviour is picked by the request's model name, so one server covers every case:
//   any name     answers normally (stream or not, usage chunk when include_usage is asked)
//   split-utf8   streams "é日本🙂" with every character's bytes split across two writes
//   stall        streams one chunk, then goes silent (idle timeout)
//   slow         holds its response headers for 1 s (first-byte timeout)
//   fail-500     answers 500 in the OpenAI error shape
//   fail-429     answers 429 with Retry-After, as a provider over its rate limit
//   die-midway   streams two chunks, then drops the connection
//   endless      streams a chunk every 20 ms until the client goes away
//   flood        streams FLOOD_EVENTS events of 64 KB as fast as the reader takes them (backpressure)
//   flood-endless  the same, without end
//   fail-html    answers 502 with an HTML page, as a proxy in front of a provider does
//   moderated    answers 403 in the OpenAI shape, as a provider's moderation refusing a prompt
//   usage-*      answers normally with impossible usage (POISONED_USAGE: 3e9, negative, 1.5, "12")
import {
  createServer,
  type IncomingHttpHeaders,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FakeOpenAIOptions {
  /** Content chunks of a streamed answer when the request gives no max_tokens. */
  chunks?: number;
  /** Delay between streamed chunks. */
  chunkIntervalMs?: number;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /**
   * Hostile keep-alive: a request arriving on a connection that was idle at least this long is
   * answered with a TCP reset and nothing else, as when a backend's idle timer closes the socket just
   * as the request is on its way (0: on every reused connection).
   */
  resetReusedAfterIdleMs?: number;
  /** Serve HTTPS with this key and certificate (PEM), as a remote provider does. */
  tls?: { key: string; cert: string };
}

export interface SeenRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export const FAKE_PROMPT_TOKENS = 7;
export const SPLIT_UTF8_TEXT = 'é日本🙂';
export const FLOOD_EVENTS = 128;

/** Usage a hostile or broken backend reports, by model name. */
export const POISONED_USAGE: Record<string, Record<string, unknown>> = {
  'usage-huge': { prompt_tokens: 3e9 },
  'usage-negative': { completion_tokens: -4 },
  'usage-fraction': { prompt_tokens: 1.5 },
  'usage-text': { completion_tokens: '12' },
};

export class FakeOpenAI {
  readonly requests: SeenRequest[] = [];
  healthRequests = 0;
  healthStatus = 200;
  /** Streams the client closed before their end. */
  abortedStreams = 0;
  /** TCP connections accepted, and reused ones reset (resetReusedAfterIdleMs). */
  connections = 0;
  resets = 0;
  private readonly idleSince = new WeakMap<object, number>();
  private server!: Server;

  private constructor(private readonly options: FakeOpenAIOptions) {}

  static async start(options: FakeOpenAIOptions = {}, port = 0): Promise<FakeOpenAI> {
    const fake = new FakeOpenAI(options);
    const handle: RequestListener = (req, res) => {
      const idleSince = fake.idleSince.get(req.socket);
      const resetAfter = fake.options.resetReusedAfterIdleMs;
      if (resetAfter !== undefined && idleSince !== undefined && performance.now() - idleSince >= resetAfter) {
        fake.resets += 1;
        req.socket.resetAndDestroy();
        return;
      }
      res.on('finish', () => fake.idleSince.set(req.socket, performance.now()));
      // Like llama-server, /slots answers what /health does while the model loads, and needs the key
      // where /health does not; once loaded this one has no slots endpoint (--no-slots: 501), so the
      // gateway reads no load from it.
      if (req.method === 'GET' && (req.url === '/health' || req.url === '/slots')) {
        fake.healthRequests += 1;
        const keyRefused =
          req.url === '/slots' &&
          fake.options.apiKey !== undefined &&
          req.headers.authorization !== `Bearer ${fake.options.apiKey}`;
        const status = keyRefused ? 401 : req.url === '/slots' && fake.healthStatus === 200 ? 501 : fake.healthStatus;
        res.writeHead(status, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        fake.requests.push({ path: req.url ?? '', headers: req.headers, body });
        if (fake.options.apiKey && req.headers.authorization !== `Bearer ${fake.options.apiKey}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}');
          return;
        }
        fake.answer(req.url ?? '', body, res);
      });
    };
    fake.server = options.tls ? createTlsServer(options.tls, handle) : createServer(handle);
    fake.server.keepAliveTimeout = 65_000;
    fake.server.on('connection', () => (fake.connections += 1));
    await new Promise<void>((resolve) => fake.server.listen(port, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private answer(path: string, body: Record<string, unknown>, res: ServerResponse): void {
    const model = String(body.model);
    if (model === 'fail-500') {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":500,"message":"model crashed","type":"server_error"}}');
      return;
    }
    if (model === 'moderated') {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end('{"error":{"code":403,"message":"Your input was flagged by moderation","type":"moderation_error"}}');
      return;
    }
    if (model === 'fail-html') {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1>nginx at 10.0.0.7</body></html>');
      return;
    }
    if (model === 'fail-429') {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"error":{"code":429,"message":"Rate limit exceeded","type":"rate_limit_error"}}');
      return;
    }
    if (model === 'slow') {
      setTimeout(() => this.answer(path, { ...body, model: 'fine' }, res), 1000);
      return;
    }
    if (path === '/v1/embeddings') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          object: 'list',
          model,
          data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] }],
          usage: { prompt_tokens: FAKE_PROMPT_TOKENS, total_tokens: FAKE_PROMPT_TOKENS },
        }),
      );
      return;
    }
    const count = typeof body.max_tokens === 'number' ? body.max_tokens : (this.options.chunks ?? 3);
    const usage = {
      prompt_tokens: FAKE_PROMPT_TOKENS,
      completion_tokens: count,
      total_tokens: FAKE_PROMPT_TOKENS + count,
      ...POISONED_USAGE[model],
    };
    if (body.stream !== true) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-fake',
          object: 'chat.completion',
          created: 1,
          model,
          choices: [
            { index: 0, finish_reason: 'length', message: { role: 'assistant', content: 'tok'.repeat(count) } },
          ],
          usage,
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const event = (delta: object, extra: object = {}) =>
      `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
    const finish = () => {
      res.write(
        `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: {}, finish_reason: 'length' }] })}\n\n`,
      );
      if (includeUsage) {
        res.write(
          `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model, choices: [], usage })}\n\n`,
        );
      }
      res.end('data: [DONE]\n\n');
    };
    res.on('close', () => {
      if (!res.writableFinished) this.abortedStreams += 1;
    });

    if (model === 'split-utf8') {
      const bytes = Buffer.from(event({ content: SPLIT_UTF8_TEXT }));
      const cut = bytes.indexOf(Buffer.from('日')) + 1;
      res.write(bytes.subarray(0, cut));
      setTimeout(() => {
        res.write(bytes.subarray(cut));
        finish();
      }, 30);
      return;
    }
    if (model === 'die-midway') {
      res.write(event({ content: 'one ' }));
      res.write(event({ content: 'two ' }));
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
    if (model === 'flood' || model === 'flood-endless') {
      const big = event({ content: 'x'.repeat(64 * 1024) });
      let left = model === 'flood' ? FLOOD_EVENTS : Infinity;
      const pump = () => {
        while (left > 0) {
          left -= 1;
          if (!res.write(big)) return void res.once('drain', pump);
        }
        finish();
      };
      pump();
      return;
    }
    if (model === 'stall') {
      res.write(event({ content: 'tok' }));
      return;
    }
    const total = model === 'endless' ? Infinity : count;
    const interval = model === 'endless' ? 20 : (this.options.chunkIntervalMs ?? 0);
    let sent = 0;
    const next = () => {
      if (res.destroyed) return;
      if (sent >= total) return finish();
      sent += 1;
      res.write(event({ content: 'tok' }));
      if (interval > 0) setTimeout(next, interval);
      else next();
    };
    next();
  }
}
