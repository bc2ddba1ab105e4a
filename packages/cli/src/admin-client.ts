import { loadConfig, z } from '@gguf-gateway/shared/config';

export const cliConfigSchema = {
  GGUF_GATEWAY_URL: z.string().url().default('http://127.0.0.1:8080'),
  /** An admin-scoped key (`scope=admin` in the keys file). */
  GGUF_GATEWAY_API_KEY: z.string().optional(),
  /** How long a progress stream may stay silent; the gateway sends a keep-alive every 15 s. */
  GGUF_GATEWAY_STREAM_IDLE_MS: z.coerce.number().int().positive().default(60_000),
};

export class AdminApiError extends Error {}

/** The gateway's admin API, as the CLI uses it. */
export class AdminClient {
  private readonly base: string;
  private readonly key: string | undefined;
  private readonly streamIdleMs: number;

  constructor(env: Record<string, string | undefined> = process.env) {
    const config = loadConfig(cliConfigSchema, env, { fileVariables: ['GGUF_GATEWAY_API_KEY'] });
    this.base = config.GGUF_GATEWAY_URL.replace(/\/$/, '');
    this.key = config.GGUF_GATEWAY_API_KEY;
    this.streamIdleMs = config.GGUF_GATEWAY_STREAM_IDLE_MS;
  }

  /** The gateway always answers JSON: anything else (a proxy's HTML page, another server) is named, not parsed. */
  private notJson(res: Response): AdminApiError {
    const type = res.headers.get('content-type') ?? 'no content type';
    return new AdminApiError(
      `${res.status} ${res.statusText}: the answer from ${this.base} is not JSON (${type}); is GGUF_GATEWAY_URL the gateway?`,
    );
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { authorization: `Bearer ${this.key}`, ...extra } : extra;
  }

  /** A request whose non-2xx answer becomes an AdminApiError carrying the gateway's message. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/admin/v1${path}`, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new AdminApiError(
        `cannot reach the gateway at ${this.base}: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      throw this.notJson(res);
    }
    if (!res.ok) {
      const message = (parsed as { error?: { message?: string } } | undefined)?.error?.message ?? text;
      throw new AdminApiError(`${res.status}: ${message}`);
    }
    return parsed as T;
  }

  /** Server-sent events of a path, as (event, data) pairs, until the server ends the stream. */
  async *events(path: string): AsyncGenerator<{ event: string; data: unknown }> {
    let res: Response;
    // Aborted when no byte arrives for streamIdleMs: a gateway that went silent must not hang the CLI.
    const idle = new AbortController();
    let timer = setTimeout(() => idle.abort(), this.streamIdleMs);
    try {
      res = await fetch(`${this.base}/admin/v1${path}`, {
        headers: this.headers({ accept: 'text/event-stream' }),
        signal: idle.signal,
      });
    } catch (err) {
      clearTimeout(timer);
      if (idle.signal.aborted) throw this.silent();
      throw new AdminApiError(
        `cannot reach the gateway at ${this.base}: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    if (!res.ok || !res.body) {
      clearTimeout(timer);
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      if (!body) throw this.notJson(res);
      throw new AdminApiError(`${res.status}: ${body.error?.message ?? res.statusText}`);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(), this.streamIdleMs);
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) yield { event, data: parseEventData(data) };
        }
      }
    } catch (err) {
      if (err instanceof AdminApiError) throw err;
      if (idle.signal.aborted) throw this.silent();
      throw new AdminApiError(`lost the progress stream from ${this.base}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private silent(): AdminApiError {
    return new AdminApiError(
      `the progress stream from ${this.base} was silent for ${this.streamIdleMs / 1000} s (the gateway sends a keep-alive every 15 s); the pull may still be running`,
    );
  }
}

function parseEventData(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    throw new AdminApiError(`the progress stream sent data that is not JSON: ${data.slice(0, 80)}`);
  }
}
