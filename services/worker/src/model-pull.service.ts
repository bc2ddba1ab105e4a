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
import { bytesDone, parallelState, parseState, sequentialState, type DownloadState } from './download-state.js';
import { AccessRefusedError, type HubClient, type ResolvedFile } from './hub.client.js';
import { DiskWriteError, type ModelFilesRepository } from './model-files.repository.js';
import type { ModelsRepository } from './models.repository.js';
import { ProgressMeter } from './progress-meter.js';
import { FileChangedError, RangedDownload, RangesIgnoredError, SurplusBytesError } from './ranged-download.js';
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
  /** Concurrent ranges for a file above `parallelMinBytes`. */
  connections: number;
  parallelMinBytes: number;
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

/** The file the pull planned is not the one the hub serves now: its partial file is of no use. */
class ChangedOnHubError extends UnrecoverableError {
  constructor(message: string) {
    super(message);
    this.name = 'ChangedOnHubError';
  }
}

/** How a download of one file starts: over one stream, or in parallel ranges where the server allows. */
interface DownloadMode {
  sequentialOnly: boolean;
}

/** One pull, start to finish: resolve, check space, download with resume, verify, land, record. */
export class ModelPullService {
  constructor(private readonly options: ModelPullOptions) {}

  async pull(job: PullJob): Promise<PullResult> {
    const data = validated(job.data);
    const meter = new ProgressMeter(this.options.progressIntervalMs, async (progress) => {
      await job.progress(progress);
      if (await job.cancelled()) throw new PullCancelledError();
    });
    // Between progress reports too (a resolve that hangs, a stalled connection), a cancel stops the pull.
    const cancel = new AbortController();
    const watch = setInterval(() => {
      job.cancelled().then(
        (cancelled) => cancelled && cancel.abort(new PullCancelledError()),
        () => undefined,
      );
    }, this.options.progressIntervalMs);
    try {
      await meter.enter('resolving');
      const plan = await this.plan(data, cancel.signal);
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
        const sha256 = await this.download(data, file, meter, cancel.signal);
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
    } finally {
      clearInterval(watch);
    }
  }

  private async plan(data: PullJobData, cancel: AbortSignal): Promise<PlannedFile[]> {
    const { files } = this.options;
    const plan: PlannedFile[] = [];
    for (const file of pullFiles(data)) {
      const resolved = await this.resolve(data, file, cancel);
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
  private async resolve(data: PullJobData, file: PullFile, cancel: AbortSignal): Promise<ResolvedFile> {
    const { hub } = this.options;
    try {
      return await hub.resolve(hub.fileUrl(data.source, file.repoFile), cancel);
    } catch (err) {
      if (cancel.aborted) throw new PullCancelledError();
      if (err instanceof AccessRefusedError) throw new UnrecoverableError(err.message);
      throw err;
    }
  }

  /**
   * Asks the hub again where a planned file is, since a signed CDN URL expires: the file itself must
   * be the one planned, or the bytes on disk belong to another file.
   */
  private async resolveAgain(data: PullJobData, file: PlannedFile, cancel: AbortSignal): Promise<URL> {
    const now = await this.resolve(data, file, cancel);
    const was = file.resolved;
    if (now.size !== was.size || now.sha256 !== was.sha256) {
      throw new ChangedOnHubError(
        `${file.name} changed on the server during the pull (size ${was.size} -> ${now.size}, sha256 ${was.sha256} -> ${now.sha256}); the partial file was removed: pull again`,
      );
    }
    return new URL(now.url);
  }

  /**
   * Downloads into the partial file, resuming after drops and stalls (each range on its own, and
   * the whole download with a fresh URL after a refusal); returns the sha256 of the whole file.
   */
  private async download(
    data: PullJobData,
    file: PlannedFile,
    meter: ProgressMeter,
    cancel: AbortSignal,
  ): Promise<string> {
    const { files, logger } = this.options;
    const startedWith = meter.bytesDone;
    const mode: DownloadMode = { sequentialOnly: false };
    let failures = 0;
    let refusedLast = false;
    let changed = false;
    try {
      // Resolved right before its download: the URL from the plan may have expired while earlier parts downloaded.
      let url = await this.resolveAgain(data, file, cancel);
      for (;;) {
        const before = meter.bytesDone;
        try {
          return await this.downloadOnce(url, data, file, meter, startedWith, mode, cancel);
        } catch (err) {
          if (cancel.aborted) throw new PullCancelledError();
          if (err instanceof RangesIgnoredError) {
            logger.info({ file: file.name, reason: err.message }, 'no ranges: one connection');
            mode.sequentialOnly = true;
            await files.removePartial(file.name);
            continue;
          }
          if (err instanceof FileChangedError) {
            // Started over once; a file that changes again while downloading is not one file to land.
            if (changed) throw new ChangedOnHubError(`${err.message}, again: the partial file was removed: pull again`);
            changed = true;
            logger.warn({ file: file.name, reason: err.message }, 'file changed on the server, starting over');
            await files.removePartial(file.name);
            url = await this.resolveAgain(data, file, cancel);
            continue;
          }
          if (err instanceof UnrecoverableError || err instanceof DiskWriteError) throw err;
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
          await sleep(Math.min(250 * 2 ** (failures - 1), 5000), undefined, { signal: cancel });
          url = await this.resolveAgain(data, file, cancel);
        }
      }
    } catch (err) {
      if (cancel.aborted) throw new PullCancelledError();
      if (err instanceof DiskWriteError) throw await this.diskFailure(file, err);
      if (err instanceof ChangedOnHubError || err instanceof SurplusBytesError) await files.removePartial(file.name);
      throw err;
    }
  }

  /** What is on disk of a file (its saved ranges, or a partial from one stream), or a fresh plan. */
  private async startState(file: PlannedFile, mode: DownloadMode): Promise<{ state: DownloadState; fresh: boolean }> {
    const { files, connections, parallelMinBytes } = this.options;
    const size = file.resolved.size;
    const onDisk = await files.sizeOf(files.partialPath(file.name));
    const saved = parseState(await files.readState(file.name), size);
    if (saved && onDisk !== null && (!mode.sequentialOnly || saved.pieces.length === 1)) {
      // One stream writes in order: the file's own length is what is on disk, to the byte.
      if (saved.pieces.length === 1) saved.pieces[0]!.done = Math.min(onDisk, size ?? onDisk);
      if (saved.pieces.length === 1 || onDisk === size) return { state: saved, fresh: false };
    }
    if (!saved && onDisk !== null && onDisk > 0 && (size === null || onDisk <= size)) {
      return { state: sequentialState(size, onDisk), fresh: false };
    }
    const parallel = !mode.sequentialOnly && connections > 1 && size !== null && size > parallelMinBytes;
    return { state: parallel ? parallelState(size, connections) : sequentialState(size), fresh: true };
  }

  private async downloadOnce(
    url: URL,
    data: PullJobData,
    file: PlannedFile,
    meter: ProgressMeter,
    fileStartsAt: number,
    mode: DownloadMode,
    cancel: AbortSignal,
  ): Promise<string> {
    const { files, hub, stallMs, logger, connections } = this.options;
    const { state, fresh } = await this.startState(file, mode);
    // Saved before the file is made its full length: a file of that length without its state is never taken as done.
    if (fresh) await files.saveState(file.name, state);
    const parallel = state.pieces.length > 1;
    const partial = await files.openPartial(file.name, { size: parallel ? file.resolved.size : null, fresh });
    meter.bytesDone = fileStartsAt + bytesDone(state);
    meter.restartClock();
    // A report in flight is not awaited per write; a failed one (a cancel) stops the download.
    let reporting = false;
    const download: RangedDownload = new RangedDownload({
      name: file.name,
      file: partial,
      state,
      saveState: (s) => files.saveState(file.name, s),
      connections: parallel ? connections : 1,
      url,
      refreshUrl: () => this.resolveAgain(data, file, cancel),
      hub,
      stallMs,
      signal: cancel,
      logger,
      onBytes: (bytes) => {
        this.options.onBytes?.(bytes);
        if (meter.add(bytes) && !reporting) {
          reporting = true;
          meter.report().then(
            () => (reporting = false),
            (err: unknown) => download.fail(err as Error),
          );
        }
      },
    });
    try {
      return await download.run();
    } finally {
      await partial.close();
    }
  }

  /** The disk, not the network, failed: retrying would only fail the same way, and half a file helps nobody. */
  private async diskFailure(file: PlannedFile, err: DiskWriteError): Promise<UnrecoverableError> {
    const { files, freeSpaceMarginBytes } = this.options;
    await files.removePartial(file.name);
    if (err.code !== 'ENOSPC' && err.code !== 'EDQUOT') {
      const why = err.code === 'EIO' ? 'I/O error' : err.message;
      return new UnrecoverableError(`could not write ${err.path}: ${why}${err.code ? ` (${err.code})` : ''}`);
    }
    const free = await files.freeBytes();
    const size = file.resolved.size;
    return new UnrecoverableError(
      `disk full (${err.code}) writing ${file.name}: the pull needs ${size ?? 'an unknown number of'} bytes for it` +
        ` plus ${freeSpaceMarginBytes} (PULL_FREE_SPACE_MARGIN_BYTES), and MODELS_DIR has ${free} bytes free` +
        ` with the partial file removed`,
    );
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
    const path = await files.promote(file.name);
    await files.removeState(file.name);
    return { gguf, path };
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

async function sha256OfFile(path: string, bytes: number): Promise<string> {
  const hash = new Sha256Thread();
  try {
    await hash.addFile(path, bytes);
    return await hash.digest();
  } finally {
    await hash.close();
  }
}
