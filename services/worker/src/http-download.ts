import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { HubClient } from './hub.client.js';
import { httpError } from './hub.client.js';

export class StallError extends Error {
  constructor(ms: number) {
    super(`no bytes for ${ms} ms: connection dropped to resume`);
    this.name = 'StallError';
  }
}

export interface RangeRequest {
  url: URL;
  /** Bytes already on disk: asked for with `Range: bytes=<offset>-`. */
  offset: number;
  stallMs: number;
  signal: AbortSignal;
  hub: HubClient;
}

export interface RangeResponse {
  /** Where the body starts in the file: `offset`, or 0 when the server ignored the Range. */
  start: number;
  body: IncomingMessage;
}

const MAX_REDIRECTS = 5;

function get(
  url: URL,
  headers: Record<string, string>,
  stallMs: number,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers, signal, timeout: stallMs }, resolve);
    // The socket's idle timeout is the stall detector: no byte either way for stallMs.
    req.on('timeout', () => req.destroy(new StallError(stallMs)));
    req.on('error', reject);
    req.end();
  });
}

/** GET from `offset`, following redirects only to allowed hosts, with the token only to the hub. */
export async function openRange({ url: start, offset, stallMs, signal, hub }: RangeRequest): Promise<RangeResponse> {
  let url = start;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    hub.checkHost(url);
    const headers = hub.headersFor(url);
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await get(url, headers, stallMs, signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status === 206) {
      const from = Number(/^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1] ?? NaN);
      if (from !== offset) {
        res.destroy();
        throw new Error(`asked for bytes from ${offset}, the server sent from ${res.headers['content-range']}`);
      }
      return { start: offset, body: res };
    }
    if (status === 200) return { start: 0, body: res };
    res.resume();
    throw httpError(status, url, hub.isHub(url));
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects downloading ${start.host}`);
}
