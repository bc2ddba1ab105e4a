import { createHash } from 'node:crypto';
import { z } from 'zod';

// The contracts between services (DESIGN.md): names of queues, streams and keys, and the shapes
// that cross a process boundary. Changing one here changes it for every service at once.

/** BullMQ queue that carries model pulls. */
export const MODEL_PULLS_QUEUE = 'model-pulls';
/** Redis stream of usage events; one XADD per request, the event as JSON in the field `event`. */
export const USAGE_STREAM = 'usage:events';
export const USAGE_STREAM_FIELD = 'event';
/** Consumer group the metrics service reads the usage stream with. */
export const USAGE_CONSUMER_GROUP = 'metrics';

/**
 * Every Redis key a service writes goes through this, so that one deployment (or one test run)
 * can share a Redis with others under its own prefix.
 */
export function redisKey(prefix: string, name: string): string {
  return `${prefix}${name}`;
}

/** Postgres `integer`, the type of every count and duration column of usage_events: a larger value is set aside. */
export const PG_INTEGER_MAX = 2_147_483_647;
const tokenCount = z.number().int().nonnegative().max(PG_INTEGER_MAX);

/**
 * One request's usage, as the gateway writes it to the usage stream and the metrics service reads
 * it back. A malformed event is reported and skipped by the reader, never retried forever.
 */
export const usageEventSchema = z.object({
  /**
   * Made by the gateway, unique per request: the metrics service stores one row per requestId, so a
   * client's own id (which it may reuse) must never be the key.
   */
  requestId: z.string().min(1),
  /** The x-request-id the client sent, when it sent one (for correlation only, not unique). */
  clientRequestId: z.string().optional(),
  ts: z.string().datetime({ offset: true }),
  keyId: z.string().min(1),
  model: z.string(),
  backend: z.string(),
  route: z.string(),
  status: z.number().int().min(0).max(999),
  stream: z.boolean(),
  promptTokens: tokenCount,
  completionTokens: tokenCount,
  cachedTokens: tokenCount,
  ttftMs: tokenCount.nullable(),
  durationMs: tokenCount,
  /** OpenAI error code, `client_aborted`, or null on success. */
  errorCode: z.string().nullable(),
  usageSource: z.enum(['upstream', 'estimated']),
});

export type UsageEvent = z.infer<typeof usageEventSchema>;
export type UsageSource = UsageEvent['usageSource'];

export type PullSource = { repo: string; file: string; revision?: string } | { url: string };

export interface PullJobData {
  source: PullSource;
  sha256?: string;
  name?: string;
}

/**
 * The BullMQ job id of a pull, derived from its source so that identical pulls (from the admin API
 * or the orchestrator) dedupe into one job. BullMQ ids must not contain ':'.
 */
export function pullJobId(source: PullSource): string {
  const canonical =
    'url' in source ? `url\n${source.url}` : `hf\n${source.repo}\n${source.file}\n${source.revision ?? 'main'}`;
  return `pull-${createHash('sha256').update(canonical).digest('hex').slice(0, 24)}`;
}

export type PullPhase = 'queued' | 'resolving' | 'downloading' | 'verifying' | 'done';

export interface PullProgress {
  phase: PullPhase;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaSec: number | null;
}

/**
 * The inference routes, by the name a usage event, a metric and a key's `routes=` list use. The
 * gateway's route table (services/gateway/src/inference/api-routes.ts) maps each to its paths.
 */
export const API_ROUTES = [
  'chat',
  'completions',
  'embeddings',
  'messages',
  'count_tokens',
  'responses',
  'chat_input_tokens',
  'responses_input_tokens',
  'rerank',
  'tokenize',
  'detokenize',
  'apply_template',
  'infill',
] as const;
export type ApiRouteName = (typeof API_ROUTES)[number];

export type AuthorizedRoute = ApiRouteName | 'models' | 'admin';

export interface AuthorizeRequest {
  key: string;
  model: string | null;
  route: AuthorizedRoute;
  ip: string;
}

/**
 * `POST /v1/identify`: is this a valid key? The gateway asks before it reads a request's body, so a
 * caller without a key costs no parsing. Answers 200 with the key id, or the 401/429 authorize would.
 */
export interface IdentifyRequest {
  key: string;
  ip: string;
}

export interface IdentifyResponse {
  keyId: string;
}

export interface KeyLimits {
  rpm: number | null;
  tpm: number | null;
  concurrency: number | null;
  dailyTokens: number | null;
  budgetUsdDay: number | null;
  budgetUsdMonth: number | null;
}

export interface AuthorizeResponse {
  keyId: string;
  scopes: string[];
  limits: KeyLimits;
  remaining: { requests: number | null; tokens: number | null };
  /** Opaque lease id to hand back to /v1/settle; it releases the concurrency slot. */
  lease: string;
  /** The lease expires this long after authorize (or the last /v1/renew) unless settled. */
  leaseTtlSec: number;
  /** Present when the gateway may decide later requests itself (see AuthorizationGrant). */
  grant?: AuthorizationGrant;
}

/**
 * Auth's permission to reuse an allowed decision for the same key, route, model and client address
 * for `ttlMs`, without asking again. Auth grants it only for keys whose sole per-request limit is
 * rpm (no concurrency, token, quota or budget limit: their settle would charge nothing). The
 * gateway then spends each request from the key's rpm window itself, in the same Redis counter
 * auth uses (RPM_LIMITER_PREFIX, a one-minute fixed window of rate-limiter-flexible), so the limit
 * stays exact across every gateway and auth replica. A removed or expired key stops working within
 * the keys file poll plus `ttlMs`; auth never grants past a key's expiry.
 */
export interface AuthorizationGrant {
  ttlMs: number;
}

/** The rpm window's Redis key prefix (under REDIS_KEY_PREFIX), shared by auth and the gateway. */
export const RPM_LIMITER_PREFIX = 'auth:rpm';
export const RPM_WINDOW_SEC = 60;

export interface RenewRequest {
  lease: string;
}

export interface KeysReloadResponse {
  keys: number;
  errors: { line: number; message: string }[];
}

export interface SettleRequest {
  lease: string;
  promptTokens: number;
  completionTokens: number;
}
