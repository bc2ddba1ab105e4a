import type { Backend } from '../routing/backend-state.js';
import { kindOf } from '../routing/backend-kinds.js';
import { countTokens } from './backend-tokenizer.client.js';
import type { UpstreamUsage } from './usage-readers.js';

// llama.cpp runs one task per generated sequence (`n` per prompt, for each prompt of an array) and
// reports usage per task: a stream sends one usage chunk per task, but a JSON answer carries only
// the first task's usage with every task's choice. The gateway charges all of them.

export interface Outputs {
  perPrompt: number;
  prompts: number;
}

export interface MultiOutputAnswer {
  usage: UpstreamUsage;
  /** Usage reports the answer carried (a stream: one per task). */
  reportCount: number;
  /** The JSON answer's choices; null for a stream, or when they were too large to keep. */
  choices: unknown[] | null;
  body: Record<string, unknown>;
  backend: Backend;
  timeoutMs: number;
}

/** Sequences llama.cpp generates for this request. */
export function outputCount({ perPrompt, prompts }: Outputs): number {
  return perPrompt * prompts;
}

/** The usage of every task of the answer, not only the first one's. */
export async function chargeEveryOutput(outputs: Outputs, answer: MultiOutputAnswer): Promise<UpstreamUsage> {
  const { usage, reportCount, choices, backend } = answer;
  const tasks = outputCount(outputs);
  // Remote providers report the whole request's usage, as OpenAI does.
  if (tasks === 1 || !kindOf(backend).usagePerOutput) return usage;
  if (choices === null) {
    // A stream: each task reported its own usage, and the `n` tasks of one prompt each counted that
    // prompt, which was evaluated once.
    if (reportCount !== tasks) return usage;
    return {
      promptTokens: Math.round(usage.promptTokens / outputs.perPrompt),
      completionTokens: usage.completionTokens,
      cachedTokens: Math.round(usage.cachedTokens / outputs.perPrompt),
    };
  }
  const [extraPrompt, extraCompletion] = await Promise.all([
    otherPromptsTokens(answer),
    otherChoicesTokens(choices.slice(1), answer),
  ]);
  return {
    promptTokens: usage.promptTokens + extraPrompt,
    completionTokens: usage.completionTokens + extraCompletion,
    cachedTokens: usage.cachedTokens,
  };
}

/** Tokens of the prompts after the first of a prompt array, as the backend tokenizes them. */
async function otherPromptsTokens({ body, backend, timeoutMs }: MultiOutputAnswer): Promise<number> {
  const prompts = Array.isArray(body.prompt) ? body.prompt.slice(1) : [];
  const counts = await Promise.all(
    prompts.map(async (prompt: unknown) => {
      if (Array.isArray(prompt)) return prompt.length;
      const text = typeof prompt === 'string' ? prompt : JSON.stringify(prompt);
      return (await countTokens(backend, text, true, timeoutMs)) ?? estimateTokens(text);
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * Tokens of the choices llama.cpp left out of its usage. A choice cut at the token limit generated
 * exactly that many; another is counted by the backend's tokenizer, plus the end-of-text token that
 * stopped it.
 */
async function otherChoicesTokens(
  choices: unknown[],
  { body, backend, timeoutMs }: MultiOutputAnswer,
): Promise<number> {
  const limit = tokenLimit(body);
  const counts = await Promise.all(
    choices.map(async (choice) => {
      const c = (choice ?? {}) as { finish_reason?: unknown; text?: unknown; message?: { content?: unknown } };
      if (c.finish_reason === 'length' && limit !== null) return limit;
      const text =
        typeof c.text === 'string' ? c.text : typeof c.message?.content === 'string' ? c.message.content : '';
      const counted = (await countTokens(backend, text, false, timeoutMs)) ?? estimateTokens(text);
      return counted + (c.finish_reason === 'stop' ? 1 : 0);
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

function tokenLimit(body: Record<string, unknown>): number | null {
  for (const field of ['max_completion_tokens', 'max_tokens', 'n_predict']) {
    const value = body[field];
    if (Number.isSafeInteger(value) && (value as number) > 0) return value as number;
  }
  return null;
}

/** About four bytes a token, when the backend cannot count. */
function estimateTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text) / 4);
}
