import { redisKey, type PullJobData, type PullSource } from './contracts.js';

// What a pull may ask for, checked the same way by every producer (admin API, orchestrator) and
// again by the worker: a pull names files inside MODELS_DIR, so a name that could climb out of it
// (`..`, `/`, `\`, NUL, an absolute path) never gets past here.

export class InvalidPullError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
    this.name = 'InvalidPullError';
  }
}

const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** `model-00001-of-00003.gguf`: llama.cpp's gguf-split naming. */
const SPLIT_PART = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

function safeSegment(value: string): boolean {
  return SAFE_SEGMENT.test(value) && !value.includes('..') && value.length <= 200;
}

function text(value: unknown, param: string, required: boolean): string | undefined {
  if (value === undefined || value === null || value === '') {
    if (required) throw new InvalidPullError(`${param} is required`, param);
    return undefined;
  }
  if (typeof value !== 'string') throw new InvalidPullError(`${param} must be a string`, param);
  return value;
}

/** A path inside the repository: safe segments joined by single slashes, nothing else. */
function checkRepoFile(file: string): void {
  if (!file.split('/').every(safeSegment)) {
    throw new InvalidPullError(`file ${JSON.stringify(file)} is not a plain path inside the repository`, 'source.file');
  }
}

/** `-00003-of-00002` or `-of-00000` names no part that exists. */
function checkSplitPart(file: string): void {
  const split = SPLIT_PART.exec(file);
  if (split && !(Number(split[2]) >= 1 && Number(split[2]) <= Number(split[3]))) {
    throw new InvalidPullError(`file ${JSON.stringify(file)} names a split part that cannot exist`, 'source.file');
  }
}

function checkUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidPullError('source.url is not a valid URL', 'source.url');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InvalidPullError('source.url must be http or https', 'source.url');
  }
  if (url.username || url.password) {
    throw new InvalidPullError('source.url must not carry credentials', 'source.url');
  }
  try {
    decodeURIComponent(url.pathname);
  } catch {
    throw new InvalidPullError('source.url has a malformed percent escape in its path', 'source.url');
  }
  return url.toString();
}

function parseSource(value: unknown): PullSource {
  if (typeof value !== 'object' || value === null) {
    throw new InvalidPullError('source must be {repo, file, revision?} or {url}', 'source');
  }
  const raw = value as Record<string, unknown>;
  if (raw.url !== undefined) return { url: checkUrl(text(raw.url, 'source.url', true)!) };
  const repo = text(raw.repo, 'source.repo', true)!;
  if (!REPO.test(repo) || repo.includes('..')) {
    throw new InvalidPullError(`repo ${JSON.stringify(repo)} is not of the form owner/name`, 'source.repo');
  }
  const file = text(raw.file, 'source.file', true)!;
  checkRepoFile(file);
  checkSplitPart(file);
  const revision = text(raw.revision, 'source.revision', false);
  if (revision !== undefined && !revision.split('/').every(safeSegment)) {
    throw new InvalidPullError(
      `revision ${JSON.stringify(revision)} is not a branch, tag or commit`,
      'source.revision',
    );
  }
  return revision === undefined ? { repo, file } : { repo, file, revision };
}

/**
 * A URL fit to log or store: every query value is replaced, since a presigned URL (S3, GCS, Azure,
 * the hub's CDN) carries its signature, credential and policy there, and any of them lets whoever
 * reads the log download the file until it expires. The parameter names stay, to show it was signed.
 */
export function redactUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '[unparseable URL]';
  }
  for (const key of new Set(url.searchParams.keys())) url.searchParams.set(key, 'REDACTED');
  return url.toString();
}

/** A pull's source as it may be logged and stored (pull_jobs, models): see redactUrl. */
export function redactedSource(source: PullSource): PullSource {
  return 'url' in source ? { url: redactUrl(source.url) } : source;
}

/** Validates an untrusted pull request body (or job data) into PullJobData, or throws InvalidPullError. */
export function parsePullJobData(value: unknown): PullJobData {
  if (typeof value !== 'object' || value === null) throw new InvalidPullError('body must be an object', 'source');
  const raw = value as Record<string, unknown>;
  const data: PullJobData = { source: parseSource(raw.source) };
  const sha256 = text(raw.sha256, 'sha256', false);
  if (sha256 !== undefined) {
    if (!SHA256.test(sha256.toLowerCase())) throw new InvalidPullError('sha256 must be 64 hex digits', 'sha256');
    data.sha256 = sha256.toLowerCase();
  }
  const name = text(raw.name, 'name', false);
  if (name !== undefined) {
    if (!safeSegment(name)) {
      throw new InvalidPullError(
        `name ${JSON.stringify(name)} must be a plain file name (letters, digits, . _ + -)`,
        'name',
      );
    }
    data.name = name;
  }
  const parts = pullFiles(data);
  if (parts.length > 1 && (data.sha256 !== undefined || data.name !== undefined)) {
    throw new InvalidPullError(
      'a split GGUF keeps its part names and is checked part by part: drop name and sha256',
      'name',
    );
  }
  const last = parts[parts.length - 1]!;
  if (!safeSegment(last.name)) {
    throw new InvalidPullError(
      `the file name ${JSON.stringify(last.name)} is not a plain file name: give a name`,
      'name',
    );
  }
  return data;
}

export interface PullFile {
  /** File name inside MODELS_DIR. */
  name: string;
  /** Path inside the repository (Hugging Face sources only). */
  repoFile?: string;
}

function lastSegment(path: string): string {
  return decodeURIComponent(path.split('/').filter(Boolean).pop() ?? '');
}

/**
 * The files a pull lands, in order. A split GGUF (`-00001-of-0000N`) is every part, each under its
 * own name side by side, which is how llama.cpp finds the rest from the first.
 */
export function pullFiles(data: PullJobData): PullFile[] {
  if ('url' in data.source) {
    return [{ name: data.name ?? lastSegment(new URL(data.source.url).pathname) }];
  }
  const { file } = data.source;
  const split = SPLIT_PART.exec(file);
  if (!split) return [{ name: data.name ?? lastSegment(file), repoFile: file }];
  const [, stem, , of] = split as unknown as [string, string, string, string];
  const count = Number(of);
  return Array.from({ length: count }, (_, i) => {
    const repoFile = `${stem}-${String(i + 1).padStart(5, '0')}-of-${of}.gguf`;
    return { name: lastSegment(repoFile), repoFile };
  });
}

/**
 * The name a pulled model is called by (the model's id in `/v1/models`): its file name without
 * `.gguf`, and a split model's without `-00001-of-0000N` too.
 */
export function modelNameOfFile(fileName: string): string {
  return fileName.replace(/(-\d{5}-of-\d{5})?\.gguf$/i, '');
}

/**
 * BullMQ's key prefix for the pull queue, under the deployment's REDIS_KEY_PREFIX, so that producers
 * and the worker meet on the same keys (`<prefix>bull:model-pulls:...`).
 */
export function pullQueuePrefix(redisKeyPrefix: string): string {
  return redisKey(redisKeyPrefix, 'bull');
}

/** Set by a producer to cancel a pull; the worker, which owns the files, stops and removes the partial. */
export function pullCancelKey(redisKeyPrefix: string, jobId: string): string {
  return redisKey(redisKeyPrefix, `model-pulls:cancel:${jobId}`);
}

/** How long a cancel mark outlives the job it names. */
export const PULL_CANCEL_TTL_SEC = 86_400;

/**
 * Options every producer gives a pull job: retries with backoff for network faults (bad input
 * fails at once), and finished jobs kept a day so their state can still be read.
 */
export const PULL_JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 5_000 },
  removeOnComplete: { age: 86_400, count: 1000 },
  removeOnFail: { age: 86_400, count: 1000 },
} as const;

/** What a completed pull job returns (its BullMQ return value). */
export interface PullJobResult {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  /** Every file was already on disk with the right sha256: nothing was downloaded. */
  alreadyPresent: boolean;
  files: string[];
}
