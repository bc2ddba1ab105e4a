import type { Backend } from '../routing/backend-state.js';

// Asks a llama.cpp backend how many tokens a text is (its `/tokenize`), to charge the parts of an
// answer llama.cpp does not count in its usage (the other choices of `n` > 1, the other prompts of
// a prompt array). Answers null when the backend cannot say: the caller then estimates.

export async function countTokens(
  backend: Backend,
  text: string,
  withSpecial: boolean,
  timeoutMs: number,
): Promise<number | null> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (backend.apiKey) headers.authorization = `Bearer ${backend.apiKey}`;
  try {
    const res = await fetch(new URL('tokenize', backend.url.href.replace(/\/?$/, '/')), {
      method: 'POST',
      headers,
      // `model` picks the model's process behind llama-server's router; a single model ignores it.
      body: JSON.stringify({
        ...(backend.model ? { model: backend.model } : {}),
        content: text,
        add_special: withSpecial,
        parse_special: withSpecial,
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return null;
    const body = (await res.json()) as { tokens?: unknown };
    return Array.isArray(body.tokens) ? body.tokens.length : null;
  } catch {
    return null;
  }
}
