import { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import {
  InvalidPullError,
  parsePullJobData,
  pullFiles,
  type Logger,
  type PullFile,
  type PullJobData,
  type PullJobResult,
  type PullProgress,
} from '@gguf-gateway/shared';
import { GgufError, type GgufInfo } from '@gguf-gateway/gguf';
import { AccessRefusedError, type HubClient, type ResolvedFile } from './hub.client.js';
import { openRange } from './http-download.js';
import type { ModelFilesRepository } from './model-files.repository.js';
import type { ModelsRepository } from './models.repository.js';
import { ProgressMeter } from './progress-meter.js';
import { Sha256Thread } from './sha256-thread.js';

export class PullCancelledError extends UnrecoverableError {
  constructor() {
    super('cancelled');
    this.name = 'PullCancelledError';
  }
}

export interface PullJob {
  id: string;
  data: unknown;
  progress(progress: PullProgress): Promise<void>;
  cancelled(): Promise<boolean>;
}

export type PullResult = PullJobResult;

export interface ModelPullOptions {
  hub: HubClient;
  files: ModelFilesRepository;
  models: ModelsRepository;
  logger: Logger;
  stallMs: number;
  freeSpaceMarginBytes: number;
  progressIntervalMs: number;
  /** Counts downloaded bytes (model_pull_bytes_total). */
  onBytes?: (bytes: number) => void;
}

interface PlannedFile extends PullFile {
  resolved: ResolvedFile;
  expectedSha256: string | null;
  present: boolean;
}

/** A network fault that made no progress this many times in a row goes back to BullMQ's retry. */
const MAX_STALLED_RESUMES = 3;
/** Write back to disk every this many bytes while downloading, so the final fsync is short. */
const FLUSH_EVERY_BYTES = 32 * 1024 * 1024;

/** One pull, start to finish: resolve, check space, download with resume, verify, land, record. */
export class ModelPullService {
  constructor(private readonly options: ModelPullOptions) {}

  async pull(job: PullJob): Promise<PullResult> {
    const data = validated(job.data);
    const meter = new ProgressMeter(this.options.progressIntervalMs, async (progress) => {
      await job.progress(progress);
      if (await job.cancelled()) throw new PullCancelledError();
    });
    try {
      await meter.enter('resolving');
      const plan = await this.plan(data);
      meter.bytesTotal = plan.reduce((sum, f) => sum + (f.resolved.size ?? 0), 0);
      await this.checkFreeSpace(plan);
      const landed: { file: PlannedFile; sha256: string; gguf: GgufInfo; path: string }[] = [];
      for (const file of plan) {
        if (file.present) {
          meter.bytesDone += file.resolved.size ?? 0;
          const path = this.options.files.finalPath(file.name);
          landed.push({ file, sha256: file.expectedSha256!, gguf: await this.options.files.readHeader(path), path });
          continue;
        }
        await meter.enter('downloading');
        const sha256 = await this.download(data, file, meter);
        await meter.enter('verifying');
        landed.push({ file, sha256, ...(await this.verifyAndLand(file, sha256, job)) });
      }
      const [first] = landed;
      const bytes = landed.reduce((sum, l) => sum + l.gguf.fileBytes, 0);
      await this.options.models.saveModel({
        name: first!.file.name,
        path: first!.path,
        bytes,
        sha256: first!.sha256,
        source: data.source,
        gguf: first!.gguf,
      });
      meter.bytesTotal = bytes;
      meter.bytesDone = bytes;
      await meter.enter('done');
      return {
        name: first!.file.name,
        path: first!.path,
        bytes,
        sha256: first!.sha256,
        alreadyPresent: plan.every((f) => f.present),
        files: landed.map((l) => l.file.name),
      };
    } catch (err) {
      if (err instanceof PullCancelledError) {
        await Promise.all(pullFiles(data).map((f) => this.options.files.removePartial(f.name)));
      }
      throw err;
    }
  }

  private async plan(data: PullJobData): Promise<PlannedFile[]> {
    const { files } = this.options;
    const plan: PlannedFile[] = [];
    for (const file of pullFiles(data)) {
      const resolved = await this.resolve(data, file);
      if (data.sha256 && resolved.sha256 && data.sha256 !== resolved.sha256) {
        throw new UnrecoverableError(
          `sha256 given does not match the hub's: want ${data.sha256} got ${resolved.sha256}`,
        );
      }
      const expectedSha256 = data.sha256 ?? resolved.sha256;
      const finalPath = files.finalPath(file.name);
      const onDisk = await files.sizeOf(finalPath);
      const present =
        expectedSha256 !== null &&
        onDisk !== null &&
        onDisk === resolved.size &&
        (await sha256OfFile(finalPath, onDisk)) === expectedSha256;
      plan.push({ ...file, resolved, expectedSha256, present });
    }
    return plan;
  }

  private async checkFreeSpace(plan: PlannedFile[]): Promise<void> {
    const { files, freeSpaceMarginBytes } = this.options;
    let remaining = 0;
    for (const file of plan.filter((f) => !f.present)) {
      const onDisk = (await files.sizeOf(files.partialPath(file.name))) ?? 0;
      remaining += Math.max((file.resolved.size ?? 0) - onDisk, 0);
    }
    if (remaining === 0) return;
    const free = await files.freeBytes();
    const need = remaining + freeSpaceMarginBytes;
    if (free < need) {
      throw new UnrecoverableError(
        `not enough disk space in MODELS_DIR: ${need} bytes needed (${remaining} to download + ${freeSpaceMarginBytes} margin), ${free} bytes free`,
      );
    }
  }

  /** Where the file is now; a refusal here is final (the hub's own says to set HF_TOKEN). */
  private async resolve(data: PullJobData, file: PullFile): Promise<ResolvedFile> {
    const { hub } = this.options;
    try {
      return await hub.resolve(hub.fileUrl(data.source, file.repoFile));
    } catch (err) {
      if (err instanceof AccessRefusedError) throw new UnrecoverableError(err.message);
      throw err;
    }
  }

  /**
   * Asks the hub again where a planned file is, since a signed CDN URL expires: the file itself must
   * be the one planned, or the bytes on disk belong to another file.
   */
  private async resolveAgain(data: PullJobData, file: PlannedFile): Promise<URL> {
    const now = await this.resolve(data, file);
    const was = file.resolved;
    if (now.size !== was.size || now.sha256 !== was.sha256) {
      await this.options.files.removePartial(file.name);
      throw new UnrecoverableError(
        `${file.name} changed on the server during the pull (size ${was.size} -> ${now.size}, sha256 ${was.sha256} -> ${now.sha256}); the partial file was removed: pull again`,
      );
    }
    return new URL(now.url);
  }

  /** Downloads into the partial file, resuming after drops and stalls; returns the sha256 of the whole file. */
  private async download(data: PullJobData, file: PlannedFile, meter: ProgressMeter): Promise<string> {
    const { logger } = this.options;
    const startedWith = meter.bytesDone;
    // Resolved right before its download: the URL from the plan may have expired while earlier parts downloaded.
    let url = await this.resolveAgain(data, file);
    let failures = 0;
    let refusedLast = false;
    for (;;) {
      const before = meter.bytesDone;
      try {
        return await this.downloadOnce(url, file, meter, startedWith);
      } catch (err) {
        if (err instanceof UnrecoverableError) throw err;
        const refused = err instanceof AccessRefusedError;
        // An expired signed URL gets one fresh URL; refused again right after, it is not the URL.
        if (refused && refusedLast) throw new UnrecoverableError(`${(err as Error).message}, even with a fresh URL`);
        refusedLast = refused;
        failures = meter.bytesDone > before ? 1 : failures + 1;
        if (failures > MAX_STALLED_RESUMES) throw err;
        logger.warn(
          { file: file.name, bytesDone: meter.bytesDone, reason: (err as Error).message },
          'download interrupted, resuming',
        );
        await sleep(Math.min(250 * 2 ** (failures - 1), 5000));
        url = await this.resolveAgain(data, file);
      }
    }
  }

  private async downloadOnce(url: URL, file: PlannedFile, meter: ProgressMeter, fileStartsAt: number): Promise<string> {
    const { files, hub, stallMs } = this.options;
    const partial = files.partialPath(file.name);
    const size = file.resolved.size;
    let offset = (await files.sizeOf(partial)) ?? 0;
    if (size !== null && offset > size) {
      await files.truncatePartial(file.name, 0);
      offset = 0;
    }
    meter.bytesDone = fileStartsAt + offset;
    if (size !== null && offset === size) return sha256OfFile(partial, offset);
    const controller = new AbortController();
    let hash = new Sha256Thread();
    try {
      // Resuming: the bytes already on disk are hashed before the range is asked for, so the sha256
      // still covers the whole file and the connection never waits on (or buffers behind) that work.
      if (offset > 0) await hash.addFile(partial, offset);
      const { start, body } = await openRange({ url, offset, stallMs, signal: controller.signal, hub });
      if (start !== offset) {
        await files.truncatePartial(file.name, 0);
        meter.bytesDone = fileStartsAt;
        await hash.close();
        hash = new Sha256Thread();
      }
      meter.restartClock();
      // Piped straight to the file; the hash and the meter only watch the chunks go by, so the
      // download runs as fast as a plain one. A report in flight is not awaited per chunk.
      let reporting = false;
      const out = files.appendTo(file.name);
      // Listened to at once: a write error (disk full) stops the body and fails the pull instead of
      // surfacing later as an unhandled rejection that takes the whole worker down.
      const written = finished(out).catch((err: unknown) => {
        body.destroy(err as Error);
        throw writeFailure(partial, err);
      });
      const tap = hashingTap(hash);
      let unflushed = 0;
      let flushing: Promise<void> | null = null;
      body.on('data', (chunk: Buffer) => {
        unflushed += chunk.length;
        if (unflushed >= FLUSH_EVERY_BYTES && !flushing) {
          unflushed = 0;
          flushing = files.flushInBackground(out).then(() => {
            flushing = null;
          });
        }
        this.options.onBytes?.(chunk.length);
        if (meter.add(chunk.length) && !reporting) {
          reporting = true;
          meter.report().then(
            () => (reporting = false),
            (err: unknown) => body.destroy(err as Error),
          );
        }
      });
      body.pipe(tap).pipe(out);
      try {
        await finished(body);
      } catch (err) {
        // Every byte received still goes to disk, so the resume asks for exactly what is missing.
        controller.abort();
        body.unpipe(tap);
        tap.end();
        // A write error is the cause when there is one: it wins over the body's.
        await written;
        throw err;
      }
      await written;
      await flushing;
      const got = meter.bytesDone - fileStartsAt;
      if (size !== null && got > size) {
        // Downloading again would only get the same surplus: the server is not serving the file it announced.
        await files.removePartial(file.name);
        throw new UnrecoverableError(
          `${file.name}: the server sent ${got} bytes, more than the ${size} it announced; the partial file was removed`,
        );
      }
      if (size !== null && got !== size) throw new Error(`connection closed at byte ${got} of ${size}`);
      return await hash.digest();
    } finally {
      await hash.close();
    }
  }

  private async verifyAndLand(
    file: PlannedFile,
    sha256: string,
    job: PullJob,
  ): Promise<{ gguf: GgufInfo; path: string }> {
    const { files } = this.options;
    if (file.expectedSha256 && sha256 !== file.expectedSha256) {
      await files.removePartial(file.name);
      throw new UnrecoverableError(
        `sha256 mismatch for ${file.name}: want ${file.expectedSha256} got ${sha256}; the partial file was removed`,
      );
    }
    let gguf: GgufInfo;
    try {
      gguf = await files.readHeader(files.partialPath(file.name));
    } catch (err) {
      if (!(err instanceof GgufError)) throw err;
      await files.removePartial(file.name);
      throw new UnrecoverableError(`${file.name} is not a usable GGUF file (${err.code}: ${err.message}); removed`);
    }
    // Last look before the file becomes visible: a cancel that came in while verifying lands nothing.
    if (await job.cancelled()) throw new PullCancelledError();
    return { gguf, path: await files.promote(file.name) };
  }
}

function validated(data: unknown): PullJobData {
  try {
    return parsePullJobData(data);
  } catch (err) {
    if (err instanceof InvalidPullError) throw new UnrecoverableError(`invalid pull: ${err.message}`);
    throw err;
  }
}

/** The disk, not the network, failed: retrying the download would only fail the same way. */
function writeFailure(path: string, err: unknown): UnrecoverableError {
  const { code, message } = err as NodeJS.ErrnoException;
  const why = code === 'ENOSPC' ? 'disk full' : code === 'EIO' ? 'I/O error' : message;
  return new UnrecoverableError(`could not write ${path}: ${why}${code ? ` (${code})` : ''}`);
}

/**
 * Passes the download through while feeding the hash; holds it while the hash thread is behind, so
 * what waits to be hashed stays bounded however fast the bytes arrive. A hashing failure does not
 * stop the download: the bytes still land, and digest() reports the failure.
 */
function hashingTap(hash: Sha256Thread): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      if (!hash.full) return done(null, chunk);
      hash.whenRoom().then(
        () => done(null, chunk),
        () => done(null, chunk),
      );
    },
  });
}

async function sha256OfFile(path: string, bytes: number): Promise<string> {
  const hash = new Sha256Thread();
  try {
    await hash.addFile(path, bytes);
    return await hash.digest();
  } finally {
    await hash.close();
  }
}
