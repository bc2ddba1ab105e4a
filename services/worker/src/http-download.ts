import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { HubClient } from './hub.client.js';
import { httpError } from './hub.client.js';

export class StallError extends Error {
  constructor(ms: number) {
    super(`no bytes for ${ms} ms: connection dropped to resume`);
    this.name = 'StallError';
  }
}

/**
 * Kept-alive connections for the ranges of one download: a range after the first on a connection
 * costs no new handshake. Destroyed when the download ends.
 */
export class DownloadAgents {
  readonly http = new HttpAgent({ keepAlive: true });
  readonly https = new HttpsAgent({ keepAlive: true });

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

export interface RangeRequest {
  url: URL;
  /** First byte wanted. */
  start: number;
  /** Last byte wanted (inclusive); null: to the end of the file. */
  end: number | null;
  /**
   * The file's ETag (or Last-Modified) from an earlier response, sent as If-Range: a server whose
   * file has changed since answers 200 with the whole new file instead of splicing bytes of two files.
   */
  validator: string | null;
  stallMs: number;
  signal: AbortSignal;
  hub: HubClient;
  agents: DownloadAgents;
}

export interface RangeResponse {
  /** 206: the bytes asked for; false: 200, the whole file from byte 0 (Range ignored or If-Range failed). */
  partial: boolean;
  body: IncomingMessage;
  /** What to send as If-Range next time: a strong ETag, else Last-Modified; null when neither is given. */
  validator: string | null;
  /** The size of the whole file as this response states it (Content-Range total, or Content-Length of a 200). */
  total: number | null;
}

const MAX_REDIRECTS = 5;

function get(
  url: URL,
  headers: Record<string, string>,
  stallMs: number,
  signal: AbortSignal,
  agents: DownloadAgents,
): Promise<IncomingMessage> {
  const https = url.protocol === 'https:';
  const send = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers, signal, timeout: stallMs, agent: https ? agents.https : agents.http }, resolve);
    // The socket's idle timeout is the stall detector: no byte either way for stallMs.
    req.on('timeout', () => req.destroy(new StallError(stallMs)));
    req.on('error', reject);
    req.end();
  });
}

function validatorOf(res: IncomingMessage): string | null {
  const etag = res.headers.etag;
  if (etag && !etag.startsWith('W/')) return etag;
  return res.headers['last-modified'] ?? null;
}

/** GET a byte range, following redirects only to allowed hosts, with the token only to the hub. */
export async function openRange(request: RangeRequest): Promise<RangeResponse> {
  const { start, end, validator, stallMs, signal, hub, agents } = request;
  let url = request.url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    hub.checkHost(url);
    const headers = hub.headersFor(url);
    const ranged = start > 0 || end !== null;
    if (ranged) headers.range = `bytes=${start}-${end ?? ''}`;
    if (ranged && validator) headers['if-range'] = validator;
    const res = await get(url, headers, stallMs, signal, agents);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status === 206) {
      const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
      if (Number(range?.[1] ?? NaN) !== start) {
        res.destroy();
        throw new Error(`asked for bytes from ${start}, the server sent ${res.headers['content-range']}`);
      }
      const total = range?.[2] === '*' ? null : Number(range?.[2]);
      return { partial: true, body: res, validator: validatorOf(res), total };
    }
    if (status === 200) {
      const length = res.headers['content-length'];
      return { partial: false, body: res, validator: validatorOf(res), total: length ? Number(length) : null };
    }
    res.resume();
    throw httpError(status, url, hub.isHub(url));
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects downloading ${request.url.host}`);
}
