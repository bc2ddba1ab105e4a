import { UnrecoverableError } from 'bullmq';
import type { PullSource } from '@gguf-gateway/shared';
import type { AllowedHosts } from './allowed-hosts.js';

export interface ResolvedFile {
  /** Where the bytes are (the CDN URL the hub redirects to, or the source URL itself). */
  url: string;
  /** From the hub's X-Linked-Etag; null when the server does not say. */
  sha256: string | null;
  size: number | null;
}

export interface HubClientOptions {
  endpoint: string;
  token: string | undefined;
  allowedHosts: AllowedHosts;
  /** Plain `http:` downloads are refused unless allowed (HF_ENDPOINT itself is trusted as configured). */
  allowHttp: boolean;
  /** A resolve that gets no answer within this long fails (and is retried like a network fault). */
  resolveTimeoutMs: number;
}

const SHA256 = /^[0-9a-f]{64}$/;
const MAX_REDIRECTS = 5;
/** What a host answers to HEAD when it serves the URL only to GET: S3-style presigned URLs sign the method. */
const HEAD_REFUSED = new Set([403, 405, 501]);

/** The hub did not answer in time: a network fault, retried like one. */
export class ResolveTimeoutError extends Error {
  constructor(url: URL, ms: number) {
    super(`${url.host}${url.pathname} did not answer within ${ms} ms (PULL_RESOLVE_TIMEOUT_MS)`);
    this.name = 'ResolveTimeoutError';
  }
}

/** Talks to the Hugging Face hub (or a plain URL): where a file is, how big, and its sha256. */
export class HubClient {
  private readonly endpoint: URL;

  constructor(private readonly options: HubClientOptions) {
    this.endpoint = new URL(options.endpoint);
  }

  fileUrl(source: PullSource, repoFile?: string): URL {
    if ('url' in source) return new URL(source.url);
    const path = (repoFile ?? source.file).split('/').map(encodeURIComponent).join('/');
    const revision = encodeURIComponent(source.revision ?? 'main');
    return new URL(
      `${this.endpoint.pathname.replace(/\/$/, '')}/${source.repo}/resolve/${revision}/${path}`,
      this.endpoint,
    );
  }

  /** The token goes to the hub itself and nowhere else: never to the CDN a download redirects to. */
  headersFor(url: URL): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': 'gguf-gateway-worker' };
    if (this.options.token && url.origin === this.endpoint.origin)
      headers.authorization = `Bearer ${this.options.token}`;
    return headers;
  }

  isHub(url: URL): boolean {
    return url.origin === this.endpoint.origin;
  }

  /** A host that is neither the hub nor allowed, or plain HTTP not allowed, is a hard stop: retrying would not change it. */
  checkHost(url: URL): void {
    if (url.origin === this.endpoint.origin) return;
    if (!this.options.allowedHosts.allows(url)) {
      throw new UnrecoverableError(`download host ${url.host} is not in PULL_ALLOWED_HOSTS`);
    }
    if (url.protocol !== 'https:' && !this.options.allowHttp) {
      throw new UnrecoverableError(
        `refusing to download over plain HTTP from ${url.host} (anyone on the path could change the model): use https, or set PULL_ALLOW_HTTP=true`,
      );
    }
  }

  /**
   * HEAD without following redirects: the hub answers a 302 carrying X-Linked-Etag and X-Linked-Size;
   * redirects within the hub are followed, the first one off it is where the bytes are. A host that
   * refuses HEAD (a presigned URL) is asked with a GET of its first byte instead. Gives up after
   * PULL_RESOLVE_TIMEOUT_MS, and at once when `signal` aborts (a cancel).
   */
  async resolve(start: URL, signal: AbortSignal): Promise<ResolvedFile> {
    const timeout = AbortSignal.timeout(this.options.resolveTimeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    try {
      return await this.follow(start, both);
    } catch (err) {
      if (timeout.aborted && !signal.aborted) throw new ResolveTimeoutError(start, this.options.resolveTimeoutMs);
      throw err;
    }
  }

  private async follow(start: URL, signal: AbortSignal): Promise<ResolvedFile> {
    let url = start;
    this.checkHost(url);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      let res = await this.ask(url, 'HEAD', signal);
      if (HEAD_REFUSED.has(res.status) && !this.isHub(url)) res = await this.ask(url, 'GET', signal);
      const sha256 = linkedEtag(res.headers);
      const linkedSize = res.headers.get('x-linked-size');
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers.get('location');
        if (!location) throw new Error(`${url.host} answered ${res.status} without a Location`);
        const next = new URL(location, url);
        this.checkHost(next);
        if (sha256 !== null || linkedSize !== null || next.origin !== url.origin) {
          return { url: next.toString(), sha256, size: linkedSize === null ? null : Number(linkedSize) };
        }
        url = next;
        continue;
      }
      if (res.ok) {
        const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1];
        const length = res.status === 206 ? total : res.headers.get('content-length');
        return { url: url.toString(), sha256, size: linkedSize ? Number(linkedSize) : length ? Number(length) : null };
      }
      throw httpError(res.status, url, this.isHub(url));
    }
    throw new UnrecoverableError(`more than ${MAX_REDIRECTS} redirects resolving ${start.host}${start.pathname}`);
  }

  /** A GET asks for the first byte only, and its body is never read. */
  private async ask(url: URL, method: 'HEAD' | 'GET', signal: AbortSignal): Promise<Response> {
    const headers = this.headersFor(url);
    if (method === 'GET') headers.range = 'bytes=0-0';
    const res = await fetch(url, { method, redirect: 'manual', headers, signal });
    if (method === 'GET') await res.body?.cancel();
    return res;
  }
}

function linkedEtag(headers: Headers): string | null {
  const raw = headers.get('x-linked-etag');
  const value = raw?.replace(/^W\//, '').replaceAll('"', '').toLowerCase() ?? null;
  return value !== null && SHA256.test(value) ? value : null;
}

/** A download host other than the hub refused access: a signed URL that expired gets better with a fresh one. */
export class AccessRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccessRefusedError';
  }
}

/** 4xx (but 408/429, and a refusal off the hub) will not get better on retry; 5xx and the rest might. */
export function httpError(status: number, url: URL, onHub: boolean): Error {
  const where = `${url.host}${url.pathname}`;
  if (status === 401 || status === 403) {
    if (!onHub) return new AccessRefusedError(`${where} refused access (${status})`);
    return new UnrecoverableError(`${where} refused access (${status}): gated or private repositories need HF_TOKEN`);
  }
  if (status === 404) return new UnrecoverableError(`${where} not found (404): check repo, file and revision`);
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new UnrecoverableError(`${where} answered ${status}`);
  }
  return new Error(`${where} answered ${status}`);
}
