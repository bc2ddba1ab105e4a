import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeHubFile {
  /** The bytes to serve, or `path`: a file on disk, streamed (for models of hundreds of MB). */
  data?: Buffer;
  path?: string;
  /** Drop the connection once the file has been sent up to this byte offset (once only). */
  dropAtByte?: number;
  /** Stop sending, connection held open, at this byte offset (once only): a stalled download. */
  stallAtByte?: number;
  /** Serve flipped bytes while X-Linked-Etag still names the true sha256. */
  corrupt?: boolean;
  /** Where the hub's 302 points instead of its CDN (to test a host that is not allowed). */
  redirectTo?: string;
  /** The CDN answers HEAD with 403, as a presigned URL signed for GET only does. */
  refuseHead?: boolean;
  /** The CDN ignores Range and always sends the whole file with 200, as some servers do. */
  noRanges?: boolean;
}

export interface HubRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The client's port: requests on one kept-alive connection share it. */
  remotePort: number;
}

interface Blob {
  spec: FakeHubFile;
  sha256: string;
  size: number;
}

const listenLocal = async (server: Server, host: string): Promise<string> => {
  server.listen(0, host);
  await once(server, 'listening');
  return `${host}:${(server.address() as AddressInfo).port}`;
};

/** In-memory files go out in 1 MiB writes, as files on disk do, so a throttle paces them too. */
function* chunks(data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += 1 << 20) yield data.subarray(at, at + (1 << 20));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function sha256Of(spec: FakeHubFile): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  if (spec.data) return { sha256: hash.update(spec.data).digest('hex'), size: spec.data.length };
  for await (const chunk of createReadStream(spec.path!, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), size: (await stat(spec.path!)).size };
}

/**
 * A local stand-in for the Hugging Face hub: `GET/HEAD /<repo>/resolve/<revision>/<file>` answers 302
 * to a second server (the "CDN") with X-Linked-Etag (sha256) and X-Linked-Size, as the hub does for
 * LFS files. The CDN honours Range (`bytes=a-`, `bytes=a-b`) with 206 and If-Range as S3 does, and can
 * refuse HEAD, ignore ranges, change a file in place, drop, stall or corrupt a transfer. Every request
 * either server got is recorded, headers included.
 */
export class FakeHub {
  readonly requests: HubRequest[] = [];
  /** Called as each request arrives, before it is answered (to look at the client's state then). */
  onRequest: ((request: HubRequest) => void) | null = null;
  private readonly files = new Map<string, Blob>();
  private readonly blobs = new Map<string, Blob>();
  private bytesPerSec: number | null = null;
  private hubHangs = false;
  /** Body bytes the CDN has sent, over every response (to count what a resume fetched again). */
  bytesSent = 0;
  /** The hub signs each CDN URL with a number; the CDN refuses (403) signatures below this one. */
  private signature = 0;
  private oldestValidSignature = 0;
  private hubHost = '';
  private cdnHostPort = '';

  private readonly hub = createServer((req, res) => this.onHub(req, res));
  private readonly cdn = createServer((req, res) => void this.onCdn(req, res));

  private constructor(private readonly token: string | undefined) {}

  /**
   * With `token`, the hub answers 401 to a request without `Authorization: Bearer <token>`. `host`
   * is the address both servers listen on: loopback, or the Docker bridge's for containers.
   */
  static async start(options: { token?: string; host?: string } = {}): Promise<FakeHub> {
    const fake = new FakeHub(options.token);
    const host = options.host ?? '127.0.0.1';
    fake.hubHost = await listenLocal(fake.hub, host);
    fake.cdnHostPort = await listenLocal(fake.cdn, host);
    return fake;
  }

  /** The endpoint to give as HF_ENDPOINT. */
  get url(): string {
    return `http://${this.hubHost}`;
  }

  /** host:port of the CDN, for PULL_ALLOWED_HOSTS. */
  get cdnHost(): string {
    return this.cdnHostPort;
  }

  /** A direct (no redirect) URL of a file's bytes on the CDN, for `{url}` sources. */
  blobUrl(sha256: string, fileName = 'model.gguf'): string {
    return `http://${this.cdnHostPort}/blobs/${sha256}/${fileName}`;
  }

  /** Serves `file` of `repo` at `revision`; returns its sha256 and size. */
  async addFile(
    repo: string,
    file: string,
    spec: FakeHubFile,
    revision = 'main',
  ): Promise<{ sha256: string; size: number }> {
    const blob: Blob = { spec, ...(await sha256Of(spec)) };
    this.files.set(`/${repo}/resolve/${revision}/${file}`, blob);
    this.blobs.set(blob.sha256, blob);
    return { sha256: blob.sha256, size: blob.size };
  }

  /**
   * Limits the CDN's sending rate of each response, so of each connection (null: full speed), as a
   * CDN caps what one connection gets; also for tests that need time to act mid-download.
   */
  throttle(bytesPerSec: number | null): void {
    this.bytesPerSec = bytesPerSec;
  }

  /** While on, the hub takes requests and never answers them (a hung resolve). */
  hang(on: boolean): void {
    this.hubHangs = on;
  }

  /**
   * The file behind an existing CDN URL changes in place (new bytes and ETag, same URL), as a
   * re-uploaded object does; returns the new sha256 and size.
   */
  async replaceBlob(sha256: string, spec: FakeHubFile): Promise<{ sha256: string; size: number }> {
    const blob: Blob = { spec, ...(await sha256Of(spec)) };
    this.blobs.set(sha256, blob);
    return { sha256: blob.sha256, size: blob.size };
  }

  /** Every CDN URL the hub handed out so far now answers 403, as an expired signed URL does. */
  expireSignedUrls(): void {
    this.oldestValidSignature = this.signature + 1;
  }

  cdnRequests(): HubRequest[] {
    return this.requests.filter((r) => r.server === 'cdn');
  }

  async stop(): Promise<void> {
    for (const server of [this.hub, this.cdn]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  private record(server: HubRequest['server'], req: IncomingMessage): void {
    const request: HubRequest = {
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: { ...req.headers },
      remotePort: req.socket.remotePort ?? 0,
    };
    this.requests.push(request);
    this.onRequest?.(request);
  }

  private onHub(req: IncomingMessage, res: ServerResponse): void {
    this.record('hub', req);
    if (this.hubHangs) return;
    if (this.token && req.headers.authorization !== `Bearer ${this.token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"Invalid credentials"}');
      return;
    }
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://hub').pathname);
    const blob = this.files.get(path);
    if (!blob) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    const fileName = path.split('/').pop()!;
    const location =
      blob.spec.redirectTo ?? `${this.blobUrl(blob.sha256, fileName)}?X-Amz-Signature=${++this.signature}`;
    res
      .writeHead(302, {
        location,
        etag: `"${blob.sha256}"`,
        'x-linked-etag': `"${blob.sha256}"`,
        'x-linked-size': String(blob.size),
        'x-repo-commit': '0'.repeat(40),
      })
      .end();
  }

  private async onCdn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.record('cdn', req);
    const sha = /^\/blobs\/([0-9a-f]{64})\//.exec(req.url ?? '')?.[1];
    const blob = sha ? this.blobs.get(sha) : undefined;
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    const signature = new URL(req.url ?? '/', 'http://cdn').searchParams.get('X-Amz-Signature');
    if (signature !== null && Number(signature) < this.oldestValidSignature) {
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    if (req.method === 'HEAD' && blob.spec.refuseHead) {
      res
        .writeHead(403, { 'content-type': 'application/xml' })
        .end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
      return;
    }
    const etag = `"${blob.sha256}"`;
    // If-Range naming another version of the file: the Range no longer applies, the whole new file is sent.
    const ifRange = req.headers['if-range'];
    const honoured = !blob.spec.noRanges && (ifRange === undefined || ifRange === etag);
    const range = honoured ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Math.min(Number(range[2]), blob.size - 1) : blob.size - 1;
    if (start > blob.size || (range && (start === blob.size || end < start))) {
      res.writeHead(416, { 'content-range': `bytes */${blob.size}` }).end();
      return;
    }
    const headers = {
      'content-length': String(end + 1 - start),
      ...(blob.spec.noRanges ? {} : { 'accept-ranges': 'bytes' }),
      etag,
    };
    if (range) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${blob.size}` });
    else res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await this.send(blob, start, end, res);
  }

  private async send(blob: Blob, start: number, end: number, res: ServerResponse): Promise<void> {
    const { spec } = blob;
    const source = spec.data
      ? chunks(spec.data.subarray(start, end + 1))
      : createReadStream(spec.path!, { start, end, highWaterMark: 1 << 20 });
    const began = Date.now();
    let offset = start;
    try {
      for await (const piece of source) {
        let chunk = piece as Buffer;
        const cut = [spec.dropAtByte, spec.stallAtByte].find(
          (at) => at !== undefined && at >= offset && at < offset + chunk.length,
        );
        if (cut !== undefined) chunk = chunk.subarray(0, cut - offset);
        if (spec.corrupt) chunk = Buffer.from(chunk.map((b, i) => ((offset + i) % 4096 === 100 ? b ^ 0xff : b)));
        offset += chunk.length;
        this.bytesSent += chunk.length;
        if (cut !== undefined && cut === spec.dropAtByte) {
          // Flushed first, so the client holds exactly the bytes up to the drop.
          await new Promise((resolve) => res.write(chunk, resolve));
          spec.dropAtByte = undefined;
          res.socket?.destroy();
          return;
        }
        if (cut !== undefined && cut === spec.stallAtByte) {
          spec.stallAtByte = undefined;
          if (chunk.length > 0) res.write(chunk);
          await once(res, 'close');
          return;
        }
        if (chunk.length > 0 && !res.write(chunk)) await once(res, 'drain');
        if (this.bytesPerSec) await sleep(((offset - start) / this.bytesPerSec) * 1000 - (Date.now() - began));
      }
      res.end();
    } catch {
      res.destroy();
    }
  }
}
