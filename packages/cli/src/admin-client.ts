import { loadConfig, z } from '@gguf-gateway/shared';

export const cliConfigSchema = {
  GGUF_GATEWAY_URL: z.string().url().default('http://127.0.0.1:8080'),
  /** An admin-scoped key (`scope=admin` in the keys file). */
  GGUF_GATEWAY_API_KEY: z.string().optional(),
};

export class AdminApiError extends Error {}

/** The gateway's admin API, as the CLI uses it. */
export class AdminClient {
  private readonly base: string;
  private readonly key: string | undefined;

  constructor(env: Record<string, string | undefined> = process.env) {
    const config = loadConfig(cliConfigSchema, env, { fileVariables: ['GGUF_GATEWAY_API_KEY'] });
    this.base = config.GGUF_GATEWAY_URL.replace(/\/$/, '');
    this.key = config.GGUF_GATEWAY_API_KEY;
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
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const message = (parsed as { error?: { message?: string } } | undefined)?.error?.message ?? text;
      throw new AdminApiError(`${res.status}: ${message}`);
    }
    return parsed as T;
  }

  /** Server-sent events of a path, as (event, data) pairs, until the server ends the stream. */
  async *events(path: string): AsyncGenerator<{ event: string; data: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/admin/v1${path}`, { headers: this.headers({ accept: 'text/event-stream' }) });
    } catch (err) {
      throw new AdminApiError(
        `cannot reach the gateway at ${this.base}: ${(err as Error).cause ?? (err as Error).message}`,
      );
    }
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new AdminApiError(`${res.status}: ${body?.error?.message ?? res.statusText}`);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) yield { event, data: JSON.parse(data) as unknown };
        }
      }
    } catch (err) {
      if (err instanceof SyntaxError) throw err;
      throw new AdminApiError(`lost the progress stream from ${this.base}: ${(err as Error).message}`);
    }
  }
}
