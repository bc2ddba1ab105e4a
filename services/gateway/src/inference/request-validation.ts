import { badRequest } from '@gguf-gateway/shared';
import type { ApiRoute } from './api-routes.js';

// The fields the gateway itself relies on are checked here, with the error's `param`; everything
// else is the backend's to judge. What each route requires is in its row of the route table.

export interface InferenceBody {
  body: Record<string, unknown>;
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk of a stream. */
  wantsUsage: boolean;
  /** Sequences the backend generates: `n` per prompt, for each prompt of a prompt array. */
  outputs: { perPrompt: number; prompts: number };
}

/**
 * @param onlyModel the model to use when a llama-server route's client names none (the gateway
 * serves exactly one); null when it serves several. Asked only then.
 */
export function validateInferenceBody(route: ApiRoute, raw: unknown, onlyModel: () => string | null): InferenceBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw badRequest('Request body must be a JSON object (Content-Type: application/json).', null, 'invalid_body');
  }
  const body = raw as Record<string, unknown>;
  const model = body.model ?? (route.modelOptional ? (onlyModel() ?? undefined) : undefined);
  if (model === undefined)
    throw badRequest('You must provide a model parameter.', 'model', 'missing_required_parameter');
  if (typeof model !== 'string' || model === '')
    throw badRequest('model must be a non-empty string.', 'model', 'invalid_type');
  for (const required of route.required) {
    const value = body[required.param];
    if (value === undefined) {
      throw badRequest(
        `Missing required parameter: '${required.param}'.`,
        required.param,
        'missing_required_parameter',
      );
    }
    if (!required.check(value)) {
      throw badRequest(`${required.param} must be ${required.expected}.`, required.param, 'invalid_type');
    }
  }
  for (const { param, when, message } of route.unsupported) {
    if (when(body[param])) throw badRequest(message, param, 'unsupported_parameter');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw badRequest('stream must be a boolean.', 'stream', 'invalid_type');
  }
  const options = body.stream_options;
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    throw badRequest('stream_options must be an object.', 'stream_options', 'invalid_type');
  }
  const n = body.n;
  if (n !== undefined && n !== null && (!Number.isSafeInteger(n) || (n as number) < 1)) {
    throw badRequest('n must be a whole number of at least 1.', 'n', 'invalid_type');
  }
  const stream = route.streams && body.stream === true;
  const wantsUsage = stream && (options as { include_usage?: unknown } | null | undefined)?.include_usage === true;
  return {
    body,
    model,
    stream,
    wantsUsage,
    outputs: { perPrompt: (n as number | undefined) ?? 1, prompts: promptCount(body.prompt) },
  };
}

/** A prompt array is one prompt per element, unless it is one prompt given as token ids. */
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1;
  return prompt.every((p) => typeof p === 'number') ? 1 : prompt.length;
}
