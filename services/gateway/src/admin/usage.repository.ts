import type { Pool } from '@gguf-gateway/shared';
import type { UsageQuery } from './usage-query.js';

export interface UsageTotals {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

export interface UsageGroup extends UsageTotals {
  key_id: string;
  model: string;
}

const FROM_DAILY = `
SELECT key_id, model, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
  sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
  sum(cost_usd)::float8 AS cost_usd
FROM usage_daily
WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND day < ($2::timestamptz AT TIME ZONE 'UTC')::date
  AND ($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR model = $4)
GROUP BY key_id, model
ORDER BY key_id, model`;

const FROM_EVENTS = `
SELECT key_id, model, count(*) AS requests,
  count(*) FILTER (WHERE status >= 400 OR error_code IS NOT NULL) AS errors,
  sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
  sum(cost_usd)::float8 AS cost_usd
FROM usage_events
WHERE ts >= $1 AND ts < $2 AND ($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR model = $4)
GROUP BY key_id, model
ORDER BY key_id, model`;

/** Usage totals per key and model, from the daily rollup (whole days) or the raw events. */
export class UsageRepository {
  constructor(private readonly pool: Pool) {}

  async totalsByKeyAndModel(q: UsageQuery): Promise<UsageGroup[]> {
    const result = await this.pool.query<UsageGroup>(q.wholeDays ? FROM_DAILY : FROM_EVENTS, [
      q.from.toISOString(),
      q.to.toISOString(),
      q.key,
      q.model,
    ]);
    return result.rows;
  }
}
