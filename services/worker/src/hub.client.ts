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
}

const SHA256 = /^[0-9a-f]{64}$/;
const MAX_REDIRECTS = 5;

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

  /** A host that is neither the hub nor allowed is a hard stop: retrying would not change it. */
  checkHost(url: URL): void {
    if (url.origin === this.endpoint.origin || this.options.allowedHosts.allows(url)) return;
    throw new UnrecoverableError(`download host ${url.host} is not in PULL_ALLOWED_HOSTS`);
  }

  /**
   * HEAD without following redirects: the hub answers a 302 carrying X-Linked-Etag and X-Linked-Size;
   * redirects within the hub are followed, the first one off it is where the bytes are.
   */
  async resolve(start: URL): Promise<ResolvedFile> {
    let url = start;
    this.checkHost(url);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: this.headersFor(url) });
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
        const length = res.headers.get('content-length');
        return { url: url.toString(), sha256, size: linkedSize ? Number(linkedSize) : length ? Number(length) : null };
      }
      throw httpError(res.status, url, this.isHub(url));
    }
    throw new UnrecoverableError(`more than ${MAX_REDIRECTS} redirects resolving ${start.host}${start.pathname}`);
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
