// Reads token usage out of a backend's response while the response passes through untouched.
// A streamed response is cut only at SSE event boundaries, and only when a usage chunk must be
// removed; every complete event is forwarded in the same tick it arrives.

export interface UpstreamUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

interface UsageJson {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
  prompt_tokens_details?: { cached_tokens?: unknown } | null;
}

const USAGE_MARK = '"usage"';
const CONTENT_MARKS = ['"content":"', '"text":"'];
// A non-streamed body larger than this is passed on without being read for usage.
const MAX_JSON_BODY = 32 * 1024 * 1024;

// A missing count is 0; a reported one is kept as sent, for usageProblem to judge before it is used.
function count(value: unknown): number {
  return value === undefined || value === null ? 0 : typeof value === 'number' ? value : NaN;
}

export function usageFromJson(usage: unknown): UpstreamUsage | null {
  if (typeof usage !== 'object' || usage === null) return null;
  const u = usage as UsageJson;
  return {
    promptTokens: count(u.prompt_tokens),
    completionTokens: count(u.completion_tokens),
    cachedTokens: count(u.prompt_tokens_details?.cached_tokens),
  };
}

/** The end of the first SSE event in `buf` from `from` (index after its blank line), or -1. */
function eventEnd(buf: Buffer, from: number): number {
  const lf = buf.indexOf('\n\n', from);
  const crlf = buf.indexOf('\r\n\r\n', from);
  if (lf === -1) return crlf === -1 ? -1 : crlf + 4;
  if (crlf === -1 || lf < crlf) return lf + 2;
  return crlf + 4;
}

function dataOf(event: Buffer): string {
  return event
    .toString('utf8')
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line[5] === ' ' ? 6 : 5))
    .join('\n');
}

export class SseUsageTap {
  usage: UpstreamUsage | null = null;
  /** Events that carried generated text: the completion estimate when no usage ever came. */
  contentEvents = 0;
  private tail: Buffer | null = null;

  /** @param stripUsage remove usage from the stream (the client did not ask for it). */
  constructor(private readonly stripUsage: boolean) {}

  /** Takes the next chunk from the backend and returns the bytes to send to the client now. */
  push(chunk: Buffer): Buffer {
    const data = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    const out: Buffer[] = [];
    let changed = false;
    let start = 0;
    for (let end = eventEnd(data, 0); end !== -1; end = eventEnd(data, start)) {
      const event = data.subarray(start, end);
      const kept = this.inspect(event);
      if (kept !== event) changed = true;
      if (kept) out.push(kept);
      start = end;
    }
    // Only whole events go out, so that a stream cut by the gateway can still end with a clean event.
    this.tail = start < data.length ? Buffer.from(data.subarray(start)) : null;
    if (!changed) return data.subarray(0, start);
    return Buffer.concat(out);
  }

  /** What is left when the backend ends the stream: an event without its closing blank line. */
  flush(): Buffer {
    const rest = this.tail;
    this.tail = null;
    if (!rest) return Buffer.alloc(0);
    const kept = this.inspect(rest);
    return this.stripUsage ? (kept ?? Buffer.alloc(0)) : rest;
  }

  /** Records what the event says; returns it as the client should see it (null: drop it). */
  private inspect(event: Buffer): Buffer | null {
    if (CONTENT_MARKS.some((mark) => event.includes(mark))) this.contentEvents += 1;
    if (!event.includes(USAGE_MARK)) return event;
    let json: { usage?: unknown; choices?: unknown[] };
    try {
      json = JSON.parse(dataOf(event)) as typeof json;
    } catch {
      return event;
    }
    const usage = usageFromJson(json.usage);
    if (!usage) return event;
    this.usage = usage;
    if (!this.stripUsage) return event;
    if (Array.isArray(json.choices) && json.choices.length === 0) return null;
    delete json.usage;
    return Buffer.from(`data: ${JSON.stringify(json)}\n\n`);
  }
}

/** Keeps a copy of a non-streamed JSON body to read its `usage` once it has ended. */
export class JsonUsageTap {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Buffer {
    if (this.size <= MAX_JSON_BODY) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    return chunk;
  }

  get usage(): UpstreamUsage | null {
    if (this.size === 0 || this.size > MAX_JSON_BODY) return null;
    try {
      const body = JSON.parse(Buffer.concat(this.chunks, this.size).toString('utf8')) as { usage?: unknown };
      return usageFromJson(body.usage);
    } catch {
      return null;
    }
  }
}
