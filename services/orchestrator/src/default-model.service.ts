import { existsSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { readGgufFile, type GgufInfo } from '@gguf-gateway/gguf';
import {
  InvalidPullError,
  parsePullJobData,
  pullFiles,
  type Logger,
  type PullJobData,
  type PullJobView,
  type PullQueue,
} from '@gguf-gateway/shared';

/** What the model gate needs of the pull queue. */
export type DefaultModelPulls = Pick<PullQueue, 'enqueue' | 'viewOf' | 'close'>;

export interface DefaultModelSettings {
  modelsDir: string;
  modelPath?: string | undefined;
  modelRepo?: string | undefined;
  modelFile?: string | undefined;
  modelRevision?: string | undefined;
}

export interface DefaultModel {
  path: string;
  info: GgufInfo;
  /** Every part of a split GGUF together: what has to fit in VRAM. */
  bytes: number;
}

export interface DefaultModelDeps {
  logger: Logger;
  /** Opened only when a pull is needed. */
  openPulls: () => DefaultModelPulls;
  signal: AbortSignal;
  pollMs?: number;
}

const FIRST_SPLIT_PART = /^(.*)-00001-of-(\d{5})\.gguf$/;

/** The size of the model: its file, or every part beside it when it is part 1 of a split GGUF. */
function modelBytes(path: string): number {
  const split = FIRST_SPLIT_PART.exec(basename(path));
  if (!split) return statSync(path).size;
  const [, stem, of] = split as unknown as [string, string, string];
  let bytes = 0;
  for (let i = 1; i <= Number(of); i++) {
    const part = join(dirname(path), `${stem}-${String(i).padStart(5, '0')}-of-${of}.gguf`);
    if (existsSync(part)) bytes += statSync(part).size;
  }
  return bytes;
}

async function readModel(path: string, variable: string): Promise<DefaultModel> {
  if (!existsSync(path)) throw new Error(`${variable}: ${path} does not exist`);
  try {
    return { path, info: await readGgufFile(path), bytes: modelBytes(path) };
  } catch (err) {
    throw new Error(`${variable}: ${path} is not a usable GGUF file (${(err as Error).message})`, { cause: err });
  }
}

function describeProgress(status: PullJobView): string {
  const p = status.progress;
  if (!p) return status.state;
  const pct = p.bytesTotal > 0 ? ` ${((100 * p.bytesDone) / p.bytesTotal).toFixed(1)}%` : '';
  const rate = p.bytesPerSec > 0 ? ` ${(p.bytesPerSec / 1024 / 1024).toFixed(1)} MiB/s` : '';
  const eta = p.etaSec !== null && p.etaSec > 0 ? ` eta ${Math.round(p.etaSec)} s` : '';
  return `${p.phase}${pct}${rate}${eta}`;
}

/**
 * Makes sure the default model is on disk: MODEL_PATH must exist; MODEL_REPO + MODEL_FILE is
 * pulled by the worker when missing, with its progress in this log. Null when none is configured.
 */
export async function ensureDefaultModel(
  settings: DefaultModelSettings,
  { logger, openPulls, signal, pollMs = 1000 }: DefaultModelDeps,
): Promise<DefaultModel | null> {
  const { modelsDir, modelPath, modelRepo, modelFile, modelRevision } = settings;
  if (modelPath) return readModel(isAbsolute(modelPath) ? modelPath : join(modelsDir, modelPath), 'MODEL_PATH');
  if (!modelRepo && !modelFile) return null;
  if (!modelRepo || !modelFile) throw new Error('MODEL_REPO and MODEL_FILE go together: set both, or neither');

  // The worker's own rules: a name that could leave MODELS_DIR is refused here, not after the pull.
  let data: PullJobData;
  try {
    data = parsePullJobData({ source: { repo: modelRepo, file: modelFile, revision: modelRevision } });
  } catch (err) {
    if (err instanceof InvalidPullError) throw new Error(`MODEL_REPO / MODEL_FILE: ${err.message}`, { cause: err });
    throw err;
  }
  // A split GGUF is loaded from its first part; llama.cpp finds the others beside it. The worker
  // lands parts one by one, so a pull cut short leaves some: pull again (it skips the ones present).
  const parts = pullFiles(data).map((f) => join(modelsDir, f.name));
  const target = parts[0]!;
  if (parts.every((part) => existsSync(part))) return readModel(target, 'MODEL_FILE');

  const pulls = openPulls();
  try {
    const jobId = (await pulls.enqueue(data)).job.id!;
    logger.info({ jobId, repo: modelRepo, file: modelFile }, 'default model missing: pull enqueued for the worker');
    let last = '';
    let pollError: string | null = null;
    while (!signal.aborted) {
      let status: PullJobView | null;
      try {
        status = await pulls.viewOf(jobId);
      } catch (err) {
        // The poll only reads Redis: a blip during an hours-long pull must not fail the start.
        const message = (err as Error).message;
        if (message !== pollError) logger.warn({ jobId, err: message }, 'model pull status unavailable; retrying');
        pollError = message;
        await new Promise((r) => setTimeout(r, pollMs));
        continue;
      }
      pollError = null;
      if (!status) throw new Error(`pull of ${modelRepo}/${modelFile} failed: the job disappeared`);
      const line = describeProgress(status);
      if (line !== last) {
        logger.info({ jobId, state: status.state, progress: status.progress }, `model pull ${line}`);
        last = line;
      }
      if (status.state === 'completed') return readModel(status.result?.path ?? target, 'MODEL_FILE');
      if (status.state === 'failed' || status.state === 'cancelled') {
        throw new Error(`pull of ${modelRepo}/${modelFile} failed: ${status.error ?? status.state}`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
    const lastError = pollError ? `; last status error: ${pollError}` : '';
    throw new Error(`pull of ${modelRepo}/${modelFile} did not finish in time (job ${jobId})${lastError}`);
  } finally {
    await pulls.close();
  }
}
