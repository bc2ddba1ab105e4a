import type { Pool, UsageEvent } from '@gguf-gateway/shared';

/** One usage event as a row of usage_events, its cost already priced. */
export type UsageRow = UsageEvent & { costUsd: number };

// One statement, so one transaction: the rows go in (a request id already there is skipped), and
// the daily rollup grows by exactly the rows that went in. Rollup rows are written in key order so
// that two replicas writing the same days cannot deadlock.
const INSERT_BATCH = `
WITH inserted AS (
  INSERT INTO usage_events (request_id, ts, key_id, model, backend, route, status, stream, prompt_tokens,
    completion_tokens, cached_tokens, ttft_ms, duration_ms, error_code, usage_source, cost_usd)
  SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::smallint[], $8::boolean[], $9::integer[], $10::integer[], $11::integer[], $12::integer[],
    $13::integer[], $14::text[], $15::text[], $16::numeric[])
  ON CONFLICT (request_id) DO NOTHING
  RETURNING request_id, ts, key_id, model, status, error_code, prompt_tokens, completion_tokens, cost_usd
), rollup AS (
  INSERT INTO usage_daily AS d (day, key_id, model, requests, errors, prompt_tokens, completion_tokens, cost_usd)
  SELECT (ts AT TIME ZONE 'UTC')::date, key_id, model, count(*),
    count(*) FILTER (WHERE status >= 400 OR error_code IS NOT NULL),
    sum(prompt_tokens), sum(completion_tokens), sum(cost_usd)
  FROM inserted
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (day, key_id, model) DO UPDATE SET
    requests = d.requests + EXCLUDED.requests,
    errors = d.errors + EXCLUDED.errors,
    prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
    cost_usd = d.cost_usd + EXCLUDED.cost_usd
)
SELECT request_id FROM inserted`;

const DELETE_OLD_BATCH = `
DELETE FROM usage_events WHERE request_id IN (
  SELECT request_id FROM usage_events WHERE ts < now() - make_interval(days => $1) LIMIT $2
)`;

export class UsageEventsRepository {
  constructor(private readonly pool: Pool) {}

  /** Writes the rows not already there; returns the request ids that were new. */
  async insertBatch(rows: UsageRow[]): Promise<Set<string>> {
    const columns: unknown[][] = Array.from({ length: 16 }, () => []);
    for (const r of rows) {
      const values = [
        r.requestId,
        r.ts,
        r.keyId,
        r.model,
        r.backend,
        r.route,
        r.status,
        r.stream,
        r.promptTokens,
        r.completionTokens,
        r.cachedTokens,
        r.ttftMs,
        r.durationMs,
        r.errorCode,
        r.usageSource,
        r.costUsd,
      ];
      values.forEach((v, i) => columns[i]!.push(v));
    }
    const result = await this.pool.query<{ request_id: string }>(INSERT_BATCH, columns);
    return new Set(result.rows.map((r) => r.request_id));
  }

  /** Deletes up to `limit` raw events older than `days`; returns how many. */
  async deleteOlderThan(days: number, limit: number): Promise<number> {
    const result = await this.pool.query(DELETE_OLD_BATCH, [days, limit]);
    return result.rowCount ?? 0;
  }
}
