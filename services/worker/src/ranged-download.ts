import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from '@gguf-gateway/shared';
import { isDone, pieceLength, type DownloadState, type Piece } from './download-state.js';
import { DownloadPool, openRange, type RangeResponse } from './http-download.js';
import { AccessRefusedError, type HubClient } from './hub.client.js';
import { DiskWriteError, type PartialFile } from './model-files.repository.js';
import { Sha256Thread } from './sha256-thread.js';

/** The bytes behind the URL are not those already on disk (If-Range answered with the whole file, or another size). */
export class FileChangedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileChangedError';
  }
}

/** A ranged request got the whole file without an If-Range to fail: the server does not do ranges. */
export class RangesIgnoredError extends Error {
  constructor(host: string) {
    super(`${host} ignores Range requests: downloading over one connection`);
    this.name = 'RangesIgnoredError';
  }
}

/** The server sends more than the size it announced: downloading again would only get the same. */
export class SurplusBytesError extends UnrecoverableError {
  constructor(message: string) {
    super(message);
    this.name = 'SurplusBytesError';
  }
}

const MiB = 1024 * 1024;
/** Writes go out in whole, aligned MiB (the last of a piece excepted): few, large writes. */
const WRITE_BYTES = MiB;
/** Write back to disk every this many bytes while downloading, so the final fsync is short. */
const SYNC_EVERY_BYTES = 32 * MiB;
/** How stale the saved range state may get: what a SIGKILL makes the next worker fetch again, at most. */
const SAVE_EVERY_MS = 250;
/** A range that fails this many times in a row without progress fails the download (BullMQ retries it). */
const MAX_STALLED_RESUMES = 3;

export interface RangedDownloadOptions {
  /** The file's name, for logs and errors. */
  name: string;
  file: PartialFile;
  /** What is on disk already; updated as bytes land, and saved. */
  state: DownloadState;
  saveState(state: DownloadState): Promise<void>;
  connections: number;
  url: URL;
  /** After a network fault: asks the hub again (a signed URL expires), which also checks the file is the same. */
  refreshUrl(): Promise<URL>;
  hub: HubClient;
  stallMs: number;
  /** Aborted on cancel: everything stops, with its reason. */
  signal: AbortSignal;
  logger: Logger;
  /** Bytes written (progress, metrics). */
  onBytes(bytes: number): void;
}

/**
 * Downloads a file into its partial file: one piece at a time per connection, up to `connections`
 * at once, each piece resumed on its own after a drop. The sha256 follows the pieces done in file
 * order on its own thread, which reads them back from the page cache as the frontier of written
 * bytes moves: the event loop, which receives and writes, never copies or hashes a byte.
 */
export class RangedDownload {
  private url: URL;
  private refreshing: Promise<URL> | null = null;
  private readonly controller = new AbortController();
  private readonly pool: DownloadPool;
  private readonly hash = new Sha256Thread();
  private failure: Error | null = null;
  private hashedUpTo = 0;
  /** Index of the first piece not yet done (the hash frontier lies in it). */
  private frontierPiece = 0;
  private nextPiece = 0;
  private unsynced = 0;
  private saving: Promise<void> = Promise.resolve();
  /** A fresh parallel download asks for its first range alone: a server that ignores Range gets one request. */
  private rangesConfirmed: Promise<void>;
  private confirmRanges!: () => void;

  constructor(private readonly options: RangedDownloadOptions) {
    this.url = options.url;
    this.pool = new DownloadPool(options.connections);
    const { state } = options;
    const started = state.validator !== null || state.pieces.some((p) => p.done > 0);
    this.rangesConfirmed = new Promise((resolve) => (this.confirmRanges = resolve));
    if (started || state.pieces.length === 1) this.confirmRanges();
  }

  /** Stops every connection; `run` then rejects with `err` (the first one given). */
  fail(err: Error): void {
    this.failure ??= err;
    this.controller.abort(err);
    this.confirmRanges();
  }

  /** Downloads what is missing; resolves with the sha256 of the whole file. */
  async run(): Promise<string> {
    const { state, signal, connections } = this.options;
    const onCancel = () => this.fail(signal.reason as Error);
    if (signal.aborted) onCancel();
    signal.addEventListener('abort', onCancel, { once: true });
    const saver = setInterval(() => this.save(), SAVE_EVERY_MS);
    try {
      this.advanceHash();
      const left = state.pieces.filter((p) => !isDone(p)).length;
      const count = state.pieces.length === 1 ? 1 : Math.min(connections, left);
      const workers = Array.from({ length: count }, (_, i) =>
        this.connection(i === 0).catch((err: unknown) => this.fail(err as Error)),
      );
      await Promise.all(workers);
      if (this.failure) throw this.failure;
      this.advanceHash();
      return await this.hash.digest();
    } catch (err) {
      throw this.failure ?? err;
    } finally {
      clearInterval(saver);
      signal.removeEventListener('abort', onCancel);
      this.controller.abort();
      this.pool.destroy();
      // What landed is saved for the resume, unless the file was given up on (the caller removes it).
      if (!(this.failure instanceof UnrecoverableError) && !(this.failure instanceof FileChangedError)) this.save();
      await this.saving;
      await this.hash.close();
    }
  }

  private save(): void {
    this.saving = this.saving
      .then(() => this.options.saveState(this.options.state))
      .catch((err: unknown) => this.options.logger.debug({ err }, 'could not save the download state'));
  }

  private async connection(first: boolean): Promise<void> {
    if (!first) await this.rangesConfirmed;
    for (;;) {
      if (this.controller.signal.aborted) return;
      const piece = this.take();
      if (!piece) return;
      await this.fetchPiece(piece);
    }
  }

  /** Pieces go out in file order, so the hash frontier stays close behind the downloads. */
  private take(): Piece | undefined {
    const { pieces } = this.options.state;
    while (this.nextPiece < pieces.length && isDone(pieces[this.nextPiece]!)) this.nextPiece++;
    return pieces[this.nextPiece++];
  }

  /** One piece to its end, resumed after drops and stalls with a backoff, on its own. */
  private async fetchPiece(piece: Piece): Promise<void> {
    const { logger, name } = this.options;
    let failures = 0;
    while (!isDone(piece)) {
      const before = piece.done;
      try {
        if (await this.stream(piece)) return;
      } catch (err) {
        if (this.controller.signal.aborted || !retryable(err)) throw err;
        failures = piece.done > before ? 1 : failures + 1;
        if (failures > MAX_STALLED_RESUMES) throw err;
        logger.warn(
          { file: name, at: piece.start + piece.done, reason: (err as Error).message },
          'download interrupted, resuming',
        );
        await sleep(Math.min(250 * 2 ** (failures - 1), 5000), undefined, { signal: this.controller.signal });
        this.url = await this.freshUrl();
      }
    }
  }

  /** One URL refresh for all the connections that failed at about the same time. */
  private freshUrl(): Promise<URL> {
    this.refreshing ??= this.options.refreshUrl().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /**
   * Asks for the rest of a piece and checks the answer is of the same file. The first answer also
   * lets the other connections start, with its validator to send.
   */
  private async open(piece: Piece): Promise<RangeResponse> {
    const { state, stallMs, hub, name } = this.options;
    const sequential = state.pieces.length === 1;
    const from = piece.start + piece.done;
    try {
      const response = await openRange({
        url: this.url,
        start: from,
        // One stream asks open-ended (`bytes=<on disk>-`); a piece for exactly its bytes.
        end: sequential || piece.end === null ? null : piece.end - 1,
        validator: state.validator,
        stallMs,
        signal: this.controller.signal,
        hub,
        pool: this.pool,
      });
      if (!response.partial && (from > 0 || !sequential)) {
        response.discard();
        if (state.validator !== null) {
          throw new FileChangedError(`${name} changed on the server (If-Range ${state.validator} no longer matches)`);
        }
        throw new RangesIgnoredError(this.url.host);
      }
      if (response.total !== null && state.size !== null && response.total !== state.size) {
        response.discard();
        if (!response.partial && response.total > state.size) {
          throw new SurplusBytesError(
            `${name}: the server sent ${response.total} bytes, more than the ${state.size} it announced; the partial file was removed`,
          );
        }
        throw new FileChangedError(`${name} is now ${response.total} bytes on the server, not ${state.size}`);
      }
      if (state.validator === null && response.validator !== null) state.validator = response.validator;
      return response;
    } finally {
      this.confirmRanges();
    }
  }

  /** One request for the rest of a piece; true when the piece (of unknown size) ended with the file. */
  private async stream(piece: Piece): Promise<boolean> {
    const { name } = this.options;
    const from = piece.start + piece.done;
    const { body } = await this.open(piece);
    const limit = piece.end ?? Infinity;
    let pos = from;
    let buffers: Buffer[] = [];
    let buffered = 0;
    let boundary = (Math.floor(pos / WRITE_BYTES) + 1) * WRITE_BYTES;
    try {
      for await (const chunk of body) {
        if (pos + buffered + chunk.length > limit) {
          throw new SurplusBytesError(
            `${name}: the server sent ${pos + buffered + chunk.length} bytes, more than the ${limit} it announced; the partial file was removed`,
          );
        }
        let rest = chunk;
        while (pos + buffered + rest.length >= boundary) {
          const cut = boundary - (pos + buffered);
          buffers.push(rest.subarray(0, cut));
          buffered += cut;
          rest = rest.subarray(cut);
          await this.write(piece, buffers, pos, buffered);
          pos += buffered;
          buffers = [];
          buffered = 0;
          boundary += WRITE_BYTES;
        }
        if (rest.length > 0) {
          buffers.push(rest);
          buffered += rest.length;
        }
      }
    } catch (err) {
      // Every byte received still goes to disk, so the resume asks for exactly what is missing.
      if (buffered > 0 && !this.controller.signal.aborted && !(err instanceof DiskWriteError)) {
        await this.write(piece, buffers, pos, buffered);
      }
      throw err;
    }
    if (buffered > 0) await this.write(piece, buffers, pos, buffered);
    pos += buffered;
    if (piece.end === null) {
      piece.end = pos;
      return true;
    }
    if (!isDone(piece)) throw new Error(`connection closed at byte ${pos} of ${pieceLength(piece) + piece.start}`);
    return false;
  }

  private async write(piece: Piece, buffers: Buffer[], pos: number, bytes: number): Promise<void> {
    const { file } = this.options;
    await file.writeAt(buffers, pos);
    piece.done = pos + bytes - piece.start;
    this.advanceHash();
    this.unsynced += bytes;
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      this.unsynced = 0;
      file.syncInBackground();
    }
    this.options.onBytes(bytes);
  }

  /** What is written from the hash's frontier on, without a gap, goes to the hash next. */
  private advanceHash(): void {
    const { pieces } = this.options.state;
    while (this.frontierPiece < pieces.length && isDone(pieces[this.frontierPiece]!)) this.frontierPiece++;
    const at = pieces[this.frontierPiece];
    const frontier = at ? at.start + at.done : pieces[pieces.length - 1]!.end!;
    if (frontier > this.hashedUpTo) {
      this.hash.queueFile(this.options.file.path, this.hashedUpTo, frontier);
      this.hashedUpTo = frontier;
    }
  }
}

/** What a piece may retry by itself; the rest stops the whole download. */
function retryable(err: unknown): boolean {
  return !(
    err instanceof UnrecoverableError ||
    err instanceof AccessRefusedError ||
    err instanceof FileChangedError ||
    err instanceof RangesIgnoredError ||
    err instanceof DiskWriteError
  );
}
