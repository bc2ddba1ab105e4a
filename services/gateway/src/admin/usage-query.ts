import { badRequest } from '@gguf-gateway/shared';

/** What `GET /admin/v1/usage` was asked for, checked. `to` is exclusive here. */
export interface UsageQuery {
  key: string | null;
  model: string | null;
  from: Date;
  to: Date;
  /** Whole UTC days: answered from the daily rollup, which outlives the raw events' retention. */
  wholeDays: boolean;
}

const DAY_MS = 86_400_000;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
const DEFAULT_DAYS = 30;

function text(query: Record<string, unknown>, param: string): string | null {
  const value = query[param];
  if (value === undefined || value === '') return null;
  if (typeof value !== 'string') throw badRequest(`'${param}' must be given once, as a string.`, param);
  if (value.length > 256) throw badRequest(`'${param}' is longer than 256 characters.`, param);
  return value;
}

interface Bound {
  at: Date;
  dateOnly: boolean;
}

function bound(query: Record<string, unknown>, param: 'from' | 'to'): Bound | null {
  const value = text(query, param);
  if (value === null) return null;
  const dateOnly = DATE_ONLY.test(value);
  const at = new Date(dateOnly ? `${value}T00:00:00Z` : value);
  if ((!dateOnly && !DATE_TIME.test(value)) || Number.isNaN(at.getTime())) {
    throw badRequest(
      `'${param}' must be a date (2026-11-20) or an ISO 8601 date-time with a time zone (2026-11-20T10:00:00Z).`,
      param,
      'invalid_date',
    );
  }
  return { at, dateOnly };
}

function startOfUtcDay(at: Date): Date {
  return new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
}

/**
 * `from` and `to` are dates (whole UTC days, `to` included) or date-times (`to` excluded). Without
 * them: the last 30 days up to today included.
 */
export function parseUsageQuery(query: Record<string, unknown>, now = new Date()): UsageQuery {
  const key = text(query, 'key');
  const model = text(query, 'model');
  const fromBound = bound(query, 'from');
  const toBound = bound(query, 'to');
  const wholeDays = (fromBound?.dateOnly ?? true) && (toBound?.dateOnly ?? true);
  const to = toBound
    ? new Date(toBound.at.getTime() + (toBound.dateOnly ? DAY_MS : 0))
    : wholeDays
      ? new Date(startOfUtcDay(now).getTime() + DAY_MS)
      : now;
  const from = fromBound?.at ?? new Date(to.getTime() - DEFAULT_DAYS * DAY_MS);
  if (from.getTime() >= to.getTime()) throw badRequest("'from' must be before 'to'.", 'from', 'invalid_date_range');
  return { key, model, from, to, wholeDays };
}
