import { usageEventSchema, type UsageEvent } from '@gguf-gateway/shared';

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
