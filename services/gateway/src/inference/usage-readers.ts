// How each route's answer reports token usage, read from a JSON body or from one stream event.
// A reader returns the fields it found (a stream reports them piece by piece: Anthropic's input
// tokens in `message_start`, its output tokens in `message_delta`); `combineUsage` makes one usage
// of the pieces.

export interface UpstreamUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

export type UsageReport = Partial<UpstreamUsage>;

/**
 * openai: `usage.prompt_tokens` / `completion_tokens` (chat, completions, embeddings, rerank);
 * anthropic: `usage.input_tokens` + `cache_read_input_tokens` / `output_tokens`;
 * responses: `usage.input_tokens` / `output_tokens`; llama: llama-server's own `tokens_evaluated` /
 * `tokens_predicted` (infill); none: the route generates nothing and costs no tokens (tokenize).
 */
export type UsageDialect = 'openai' | 'anthropic' | 'responses' | 'llama' | 'none';

type Json = Record<string, unknown>;

const asObject = (v: unknown): Json | null =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;

/**
 * A count as the backend gave it (NaN when not a number), undefined when it is missing: an
 * impossible count is kept for usageProblem to judge, so the request is estimated and logged
 * rather than charged a count the backend never gave.
 */
function count(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'number' ? value : NaN;
}

function defined(report: UsageReport): UsageReport | null {
  const entries = Object.entries(report).filter(([, v]) => v !== undefined);
  return entries.length === 0 ? null : (Object.fromEntries(entries) as UsageReport);
}

function openaiUsage(json: Json): UsageReport | null {
  const usage = asObject(json.usage);
  if (!usage) return null;
  return defined({
    promptTokens: count(usage.prompt_tokens),
    completionTokens: count(usage.completion_tokens) ?? (count(usage.prompt_tokens) === undefined ? undefined : 0),
    cachedTokens: count(asObject(usage.prompt_tokens_details)?.cached_tokens),
  });
}

function anthropicUsage(json: Json): UsageReport | null {
  // message_start carries it inside the message; the body and message_delta at the top.
  const usage = asObject(json.usage) ?? asObject(asObject(json.message)?.usage);
  if (!usage) return null;
  const input = count(usage.input_tokens);
  const cacheRead = count(usage.cache_read_input_tokens);
  return defined({
    // Anthropic's input_tokens leave out what was read from the cache; the gateway counts the whole prompt.
    promptTokens: input === undefined ? undefined : input + (cacheRead ?? 0),
    completionTokens: count(usage.output_tokens),
    cachedTokens: cacheRead,
  });
}

function responsesUsage(json: Json): UsageReport | null {
  // The stream's response.completed event carries the response, the body is the response.
  const usage = asObject(json.usage) ?? asObject(asObject(json.response)?.usage);
  if (!usage) return null;
  return defined({
    promptTokens: count(usage.input_tokens),
    completionTokens: count(usage.output_tokens),
    cachedTokens: count(asObject(usage.input_tokens_details)?.cached_tokens),
  });
}

function llamaUsage(json: Json): UsageReport | null {
  return defined({
    promptTokens: count(json.tokens_evaluated),
    completionTokens: count(json.tokens_predicted),
    cachedTokens: count(json.tokens_cached),
  });
}

const READERS: Record<UsageDialect, (json: Json) => UsageReport | null> = {
  openai: openaiUsage,
  anthropic: anthropicUsage,
  responses: responsesUsage,
  llama: llamaUsage,
  none: () => null,
};

/** The top-level keys a dialect's usage is read from: a JSON body tap keeps only these. */
export const USAGE_KEYS: Record<UsageDialect, readonly string[]> = {
  openai: ['usage'],
  anthropic: ['usage'],
  responses: ['usage'],
  llama: ['tokens_evaluated', 'tokens_predicted', 'tokens_cached'],
  none: [],
};

/** What one body or event says about usage; null when it says nothing. */
export function readUsage(dialect: UsageDialect, json: unknown): UsageReport | null {
  const object = asObject(json);
  return object ? READERS[dialect](object) : null;
}

/**
 * One usage of a response's reports. OpenAI-style streams send one usage chunk per generated
 * sequence (llama.cpp's `n` and prompt arrays): those add up. Elsewhere a later report refines an
 * earlier one (Anthropic's message_delta after message_start). Null when nothing was reported;
 * `none` routes cost nothing and need no report.
 */
export function combineUsage(dialect: UsageDialect, reports: readonly UsageReport[]): UpstreamUsage | null {
  if (dialect === 'none') return { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  if (reports.length === 0) return null;
  const usage: UpstreamUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  for (const report of reports) {
    for (const field of ['promptTokens', 'completionTokens', 'cachedTokens'] as const) {
      const value = report[field];
      if (value === undefined) continue;
      usage[field] = dialect === 'openai' ? usage[field] + value : value;
    }
  }
  return usage;
}
