import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { globToRegExp } from './glob.js';

/**
 * The price table (PRICES_FILE, YAML or JSON) that the auth service charges budgets with and the
 * metrics service costs requests with. USD per million tokens; the first matching glob wins.
 *
 *   models:
 *     "llama-3.1-8b*": { prompt: 0.05, completion: 0.08 }
 *     "*": { prompt: 0, completion: 0 }
 */
const priceTableSchema = z.object({
  models: z.record(
    z.string().min(1),
    z.object({ prompt: z.number().nonnegative(), completion: z.number().nonnegative() }).strict(),
  ),
});

export interface ModelPrice {
  glob: string;
  matcher: RegExp;
  promptPerMillion: number;
  completionPerMillion: number;
}

export type PriceTable = ModelPrice[];

export function parsePriceTable(text: string, source = 'price table'): PriceTable {
  const parsed = priceTableSchema.safeParse(parse(text));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`${source} is invalid: ${problems.join('; ')}`);
  }
  return Object.entries(parsed.data.models).map(([glob, price]) => ({
    glob,
    matcher: globToRegExp(glob),
    promptPerMillion: price.prompt,
    completionPerMillion: price.completion,
  }));
}

export async function loadPriceTable(path: string | undefined): Promise<PriceTable> {
  if (!path) return [];
  return parsePriceTable(await readFile(path, 'utf8'), path);
}

/** Cost in USD of one request; 0 for a model the table does not price. */
export function costUsd(table: PriceTable, model: string, promptTokens: number, completionTokens: number): number {
  const price = table.find((p) => p.matcher.test(model));
  if (!price) return 0;
  return (promptTokens * price.promptPerMillion + completionTokens * price.completionPerMillion) / 1_000_000;
}
