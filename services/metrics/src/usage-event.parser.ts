import { z, type UsageEvent } from '@gguf-gateway/shared';

// The gateway writes these; a malformed one is set aside with its reason, never retried forever.
/** Postgres `integer`, the type of every count and duration column of usage_events. */
const PG_INTEGER_MAX = 2_147_483_647;
const count = z.number().int().nonnegative().max(PG_INTEGER_MAX);
const usageEventSchema = z.object({
  requestId: z.string().min(1),
  ts: z.string().datetime({ offset: true }),
  keyId: z.string().min(1),
  model: z.string(),
  backend: z.string(),
  route: z.string(),
  status: z.number().int().min(0).max(999),
  stream: z.boolean(),
  promptTokens: count,
  completionTokens: count,
  cachedTokens: count,
  ttftMs: count.nullable(),
  durationMs: count,
  errorCode: z.string().nullable(),
  usageSource: z.enum(['upstream', 'estimated']),
}) satisfies z.ZodType<UsageEvent>;

/** The event in one stream entry's `event` field, or the reason it is not one. */
export function parseUsageEvent(json: string | undefined): UsageEvent | string {
  if (json === undefined) return 'entry has no event field';
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return 'event is not JSON';
  }
  const parsed = usageEventSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
}

export type StatusClass = '2xx' | '4xx' | '5xx' | 'aborted';

export function statusClass(event: Pick<UsageEvent, 'status' | 'errorCode'>): StatusClass {
  if (event.errorCode === 'client_aborted') return 'aborted';
  if (event.status >= 500) return '5xx';
  if (event.status >= 400) return '4xx';
  return '2xx';
}
