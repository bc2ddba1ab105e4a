import { readUsage, USAGE_KEYS, type UsageDialect, type UsageReport } from './usage-readers.js';

// Reads a non-streamed JSON answer as it passes through, without holding it: a scanner that
// follows strings and nesting byte by byte keeps only the values of the few top-level keys usage
// is read from (and `choices` when asked), and replaces the top-level `model` string with the name
// the client asked for. A 30 MB embeddings answer costs one pass and a few bytes of memory.

/** A kept value larger than this is dropped: the request is then metered by estimate. */
const MAX_KEPT_VALUE_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = new Set([0x7b, 0x5b]);
const IN_STRING = /["\\]/g;
const NESTED = /["{}[\]]/g;
const TOP_LEVEL = /["{}[\]:,]/g;
const CLOSE = new Set([0x7d, 0x5d]);
const MAX_KEY_BYTES = 64;

export interface JsonTapOptions {
  dialect: UsageDialect;
  /** The name the top-level `model` should carry; null leaves it as the backend wrote it. */
  model: string | null;
  /** Also keep `choices` (up to this many bytes), to meter every choice of an `n` > 1 answer. */
  keepChoicesBytes?: number;
}

export class JsonBodyTap {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private stringIsKey = false;
  private expectKey = false;
  private topIsObject = false;
  private key: number[] = [];
  /** The top-level key whose value is being read. */
  private currentKey: string | null = null;
  /** The kept value being read: its pieces, or null when the current value is not kept. */
  private kept: Buffer[] | null = null;
  private keptBytes = 0;
  private keptLimit = 0;
  private readonly values = new Map<string, Buffer>();
  /** Inside the backend's model string, which the client does not see. */
  private replacing = false;
  private readonly keys: Map<string, number>;

  constructor(private readonly options: JsonTapOptions) {
    this.keys = new Map(USAGE_KEYS[options.dialect].map((k) => [k, MAX_KEPT_VALUE_BYTES]));
    if (options.keepChoicesBytes) this.keys.set('choices', options.keepChoicesBytes);
  }

  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let emitFrom = this.replacing ? -1 : 0;
    let keptFrom = 0;
    // One byte per character, so that native regular expressions find the next byte that matters:
    // the scanner looks at quotes, brackets and (at the top level) colons and commas only.
    const text = chunk.toString('latin1');
    let i = 0;
    if (this.inString && this.escaped) {
      this.escaped = false;
      i = this.stringIsKey ? this.keyByte(chunk, 0, 1) : 1;
    }
    while (i < text.length) {
      const pattern = this.inString ? IN_STRING : this.depth <= 1 ? TOP_LEVEL : NESTED;
      pattern.lastIndex = i;
      const found = pattern.exec(text);
      if (!found) {
        if (this.inString && this.stringIsKey) this.keyByte(chunk, i, text.length);
        break;
      }
      const at = found.index;
      const b = text.charCodeAt(at);
      if (this.inString) {
        if (this.stringIsKey) this.keyByte(chunk, i, at);
        if (b === BACKSLASH) {
          if (at + 1 >= text.length) {
            this.escaped = true;
            if (this.stringIsKey) this.keyByte(chunk, at, at + 1);
            break;
          }
          if (this.stringIsKey) this.keyByte(chunk, at, at + 2);
          i = at + 2;
          continue;
        }
        this.inString = false;
        if (this.stringIsKey) this.currentKey = Buffer.from(this.key).toString('utf8');
        if (this.replacing) {
          this.replacing = false;
          emitFrom = at + 1;
        }
      } else if (b === QUOTE) {
        this.inString = true;
        this.stringIsKey = this.depth === 1 && this.expectKey;
        this.expectKey = false;
        if (this.stringIsKey) this.key = [];
        else if (this.depth === 1 && this.currentKey === 'model' && this.options.model !== null) {
          if (emitFrom >= 0) out.push(chunk.subarray(emitFrom, at));
          out.push(Buffer.from(JSON.stringify(this.options.model)));
          this.replacing = true;
          emitFrom = -1;
        }
      } else if (OPEN.has(b)) {
        this.depth += 1;
        if (this.depth === 1) this.expectKey = this.topIsObject = b === 0x7b;
      } else if (CLOSE.has(b)) {
        if (this.depth === 1) this.endValue(chunk, keptFrom, at);
        this.depth -= 1;
      } else if (b === COLON) {
        const limit = this.currentKey === null ? undefined : this.keys.get(this.currentKey);
        if (limit !== undefined) {
          this.kept = [];
          this.keptBytes = 0;
          this.keptLimit = limit;
          keptFrom = at + 1;
        }
      } else if (b === COMMA) {
        this.endValue(chunk, keptFrom, at);
        this.expectKey = this.topIsObject;
      }
      i = at + 1;
    }
    if (this.kept) this.keep(chunk.subarray(keptFrom));
    if (emitFrom >= 0) out.push(emitFrom === 0 ? chunk : chunk.subarray(emitFrom));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** Adds the bytes [from, to) of the chunk to the key being read (keys are short; a long one is cut). */
  private keyByte(chunk: Buffer, from: number, to: number): number {
    for (let j = from; j < to && this.key.length < MAX_KEY_BYTES; j++) this.key.push(chunk[j]!);
    return to;
  }

  /** What the answer reported, once it has ended; null when it said nothing readable. */
  get usage(): UsageReport | null {
    const object: Record<string, unknown> = {};
    for (const key of USAGE_KEYS[this.options.dialect]) {
      const value = this.parsed(key);
      if (value !== undefined) object[key] = value;
    }
    return readUsage(this.options.dialect, object);
  }

  /** The answer's `choices`, when asked for and not larger than asked. */
  get choices(): unknown[] | null {
    const value = this.parsed('choices');
    return Array.isArray(value) ? value : null;
  }

  private parsed(key: string): unknown {
    const raw = this.values.get(key);
    if (!raw) return undefined;
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      return undefined;
    }
  }

  private endValue(chunk: Buffer, from: number, to: number): void {
    if (!this.kept || this.currentKey === null) return;
    this.keep(chunk.subarray(from, to));
    if (this.kept) this.values.set(this.currentKey, Buffer.concat(this.kept));
    this.kept = null;
  }

  private keep(piece: Buffer): void {
    if (!this.kept) return;
    this.keptBytes += piece.length;
    if (this.keptBytes > this.keptLimit) {
      this.kept = null;
      return;
    }
    this.kept.push(Buffer.from(piece));
  }
}
