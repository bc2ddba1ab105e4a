import type { RawJson } from '../http/json-body.middleware.js';

// The body a backend gets. Serializing the parsed body again costs about what parsing it did, and a
// chat's history can be megabytes: when the client's bytes already say what the backend should read,
// they go as they came. They do when the model name stays the client's and no top-level key repeats
// (JSON.parse keeps a repeated key's last value, a backend may keep its first: the gateway must not
// authorize one model and forward another). A stream that must report its usage gets the option
// written in front of the client's members.

const ASK_USAGE = Buffer.from('{"stream_options":{"include_usage":true},');
const OPEN_BRACE = 0x7b;

export interface PayloadSource {
  /** The body as parsed from the client, untouched. */
  client: Record<string, unknown>;
  /** Its bytes, when they may be forwarded (see rawJsonOf). */
  raw: RawJson | undefined;
  /** The body as the backend should read it, but for the model name. */
  upstream: Record<string, unknown>;
  /** The gateway adds `stream_options.include_usage` to meter a stream. */
  asksUsage: boolean;
}

export function upstreamPayload(source: PayloadSource, model: string): Buffer {
  const { client, raw } = source;
  const forwardable = raw !== undefined && client.model === model && raw.topLevelMembers === Object.keys(client).length;
  if (forwardable && !source.asksUsage) return raw.bytes;
  if (forwardable && !('stream_options' in client)) {
    return Buffer.concat([ASK_USAGE, raw.bytes.subarray(raw.bytes.indexOf(OPEN_BRACE) + 1)]);
  }
  return Buffer.from(JSON.stringify({ ...source.upstream, model }));
}
