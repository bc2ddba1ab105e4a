import { readUsage, type UsageDialect, type UsageReport } from './usage-readers.js';

// Reads token usage out of a streamed (SSE) answer while it passes through, and rewrites the
// `model` each event names to the one the client asked for. Each byte is scanned once: the tap
// finds event ends in the new bytes only. An event is held until its blank line (so that the
// gateway can remove or rewrite it whole), but never past MAX_EVENT_BYTES: a larger event is passed
// through unread as it arrives, and the request is metered from the other events or estimated.

export const MAX_EVENT_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const USAGE_MARKS: Record<UsageDialect, readonly string[]> = {
  openai: ['"usage"'],
  anthropic: ['"usage"'],
  responses: ['"usage"'],
  llama: ['"tokens_predicted"', '"tokens_evaluated"'],
  none: [],
};
const MODEL_MARK = '"model"';
// Generated text in OpenAI chunks (`content`, `text`), Anthropic and Responses deltas (`text`, `delta`).
const CONTENT_MARKS = ['"content":"', '"text":"', '"delta":"'];

export interface SseTapOptions {
  dialect: UsageDialect;
  /** Remove usage from the stream (the client did not ask for it). */
  stripUsage: boolean;
  /** The model name every event should carry; null leaves them as the backend wrote them. */
  model: string | null;
}

type Json = Record<string, unknown>;

/** Sets the `model` of an event (top level, or in the message / response it carries); true when it changed one. */
function renameModel(json: Json, model: string): boolean {
  let changed = false;
  for (const holder of [json, json.message, json.response]) {
    if (typeof holder !== 'object' || holder === null || Array.isArray(holder)) continue;
    const h = holder as Json;
    if (typeof h.model === 'string' && h.model !== model) {
      h.model = model;
      changed = true;
    }
  }
  return changed;
}

export class SseUsageTap {
  /** Usage as reported, one entry per event that reported some. */
  readonly reports: UsageReport[] = [];
  /** Events that carried generated text: the completion estimate when no usage ever came. */
  contentEvents = 0;
  /** Events larger than MAX_EVENT_BYTES, passed through without being read. */
  unreadEvents = 0;
  /** The bytes of the event being received, held until it ends (none while passing one through). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The event being received is over the cap: its bytes go out as they come. */
  private passing = false;
  /** Bytes of the current line before this chunk, and the byte before this chunk. */
  private lineBytes = 0;
  private lastByte = -1;
  /** `"model":"<the client's name>"` as the backend writes it when it echoes the name it was sent. */
  private readonly modelNamed: Buffer | null;

  constructor(private readonly options: SseTapOptions) {
    this.modelNamed = options.model === null ? null : Buffer.from(`${MODEL_MARK}:${JSON.stringify(options.model)}`);
  }

  /** Whether the client has part of an event: a gateway error event must start on a fresh line. */
  get midEvent(): boolean {
    return this.passing;
  }

  /** Takes the next chunk from the backend and returns the bytes to send to the client now. */
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let start = 0;
    // Events that go out as they came are sent as one slice of the chunk, from `unchanged` on.
    let unchanged = 0;
    for (let end = this.nextEventEnd(chunk, start); end !== -1; end = this.nextEventEnd(chunk, start)) {
      const piece = chunk.subarray(start, end);
      if (this.passing) {
        this.passing = false;
      } else if (this.held.length > 0) {
        const event = Buffer.concat([...this.held, piece]);
        this.held = [];
        this.heldBytes = 0;
        const kept = this.inspect(event);
        if (kept) out.push(kept);
        unchanged = end;
      } else {
        const kept = this.inspect(piece);
        if (kept !== piece) {
          out.push(chunk.subarray(unchanged, start));
          if (kept) out.push(kept);
          unchanged = end;
        }
      }
      start = end;
    }
    if (start > unchanged) out.push(chunk.subarray(unchanged, start));
    const rest = chunk.subarray(start);
    if (rest.length > 0) this.keep(rest, out);
    this.lastByte = chunk.length > 0 ? chunk[chunk.length - 1]! : this.lastByte;
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** What is left when the backend ends the stream: an event without its closing blank line. */
  flush(): Buffer {
    if (this.held.length === 0) return Buffer.alloc(0);
    const rest = Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    return this.inspect(rest) ?? Buffer.alloc(0);
  }

  /** Bytes of an event that has not ended in this chunk: held, or passed on once it is too large. */
  private keep(rest: Buffer, out: Buffer[]): void {
    if (this.passing) {
      out.push(rest);
      return;
    }
    // A copy: the backend's chunk buffer may be reused once this call returns.
    this.held.push(Buffer.from(rest));
    this.heldBytes += rest.length;
    if (this.heldBytes > MAX_EVENT_BYTES) {
      this.passing = true;
      this.unreadEvents += 1;
      out.push(...this.held);
      this.held = [];
      this.heldBytes = 0;
    }
  }

  /**
   * The index after the next event's blank line in `chunk` from `from`, or -1. Looks at each line
   * feed once; the state of a line cut by a chunk boundary is carried over.
   */
  private nextEventEnd(chunk: Buffer, from: number): number {
    let lineStart = from;
    for (let lf = chunk.indexOf(LF, from); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const length = this.lineBytes + (lf - lineStart);
      const before = lf > 0 ? chunk[lf - 1]! : this.lastByte;
      const empty = length === 0 || (length === 1 && before === CR);
      this.lineBytes = 0;
      lineStart = lf + 1;
      if (empty) return lf + 1;
    }
    this.lineBytes += chunk.length - lineStart;
    return -1;
  }

  /** Records what the event says; returns it as the client should see it (null: drop it). */
  private inspect(event: Buffer): Buffer | null {
    const { dialect, stripUsage, model } = this.options;
    if (CONTENT_MARKS.some((mark) => event.includes(mark))) this.contentEvents += 1;
    const hasUsage = USAGE_MARKS[dialect].some((mark) => event.includes(mark));
    const hasModel = model !== null && event.includes(MODEL_MARK) && !this.namesClientModel(event);
    if (!hasUsage && !hasModel) return event;
    const { fields, data } = splitEvent(event);
    let json: Json;
    try {
      json = JSON.parse(data) as Json;
    } catch {
      return event;
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return event;
    const report = hasUsage ? readUsage(dialect, json) : null;
    if (report) this.reports.push(report);
    let changed = model !== null && renameModel(json, model);
    if (report && stripUsage) {
      // A chunk that only carried the usage goes; one that carries choices too loses its usage.
      if (Array.isArray(json.choices) && json.choices.length === 0) return null;
      delete json.usage;
      changed = true;
    }
    if (!changed) return event;
    return Buffer.from(`${fields.map((f) => `${f}\n`).join('')}data: ${JSON.stringify(json)}\n\n`);
  }

  /**
   * The event's one `model` already is the client's: nothing to rename, and no parse needed for it.
   * (The mark cannot occur inside a JSON string, whose quotes are escaped.)
   */
  private namesClientModel(event: Buffer): boolean {
    const at = event.indexOf(MODEL_MARK);
    return at === event.lastIndexOf(MODEL_MARK) && event.indexOf(this.modelNamed!, at) === at;
  }
}

/** An event's other fields (`event:`, `id:`), as written, and its data lines joined. */
function splitEvent(event: Buffer): { fields: string[]; data: string } {
  const fields: string[] = [];
  const data: string[] = [];
  for (const line of event.toString('utf8').split(/\r?\n/)) {
    if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
    else if (line !== '') fields.push(line);
  }
  return { fields, data: data.join('\n') };
}
