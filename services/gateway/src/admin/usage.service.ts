import { serviceUnavailable } from '@gguf-gateway/shared';
import { parseUsageQuery } from './usage-query.js';
import type { UsageGroup, UsageRepository, UsageTotals } from './usage.repository.js';

const RETRY_AFTER_SEC = 5;

function sum(groups: UsageGroup[]): UsageTotals & { total_tokens: number } {
  const totals = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_usd: 0 };
  for (const g of groups) {
    totals.requests += g.requests;
    totals.errors += g.errors;
    totals.prompt_tokens += g.prompt_tokens;
    totals.completion_tokens += g.completion_tokens;
    totals.cost_usd += g.cost_usd;
  }
  totals.total_tokens = totals.prompt_tokens + totals.completion_tokens;
  // Costs are stored to 8 decimals; adding floats must not invent more.
  totals.cost_usd = Math.round(totals.cost_usd * 1e8) / 1e8;
  return totals;
}

/** Usage totals for the admin API: per key and model, and all together. */
export class UsageService {
  constructor(private readonly usage: UsageRepository) {}

  async totals(rawQuery: Record<string, unknown>) {
    const query = parseUsageQuery(rawQuery);
    const groups = await this.usage.totalsByKeyAndModel(query).catch((err: unknown) => {
      // Postgres away is a 503 the client may retry, not a 500; the cause stays in the logs.
      throw Object.assign(
        serviceUnavailable('The usage database is unavailable; try again shortly.', RETRY_AFTER_SEC),
        { cause: err },
      );
    });
    return {
      object: 'usage',
      key: query.key,
      model: query.model,
      from: query.from.toISOString(),
      to: query.to.toISOString(),
      source: query.wholeDays ? 'usage_daily' : 'usage_events',
      totals: sum(groups),
      data: groups.map((g) => ({ ...g, total_tokens: g.prompt_tokens + g.completion_tokens })),
    };
  }
}
