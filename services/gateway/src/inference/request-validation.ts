import { badRequest } from '@gguf-gateway/shared';

// The fields the gateway itself relies on are checked here, with the OpenAI error's `param`;
// everything else is the backend's to judge.

export type InferenceRoute = 'chat' | 'completions' | 'embeddings';

export interface InferenceBody {
  body: Record<string, unknown>;
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk of a stream. */
  wantsUsage: boolean;
}

type Check = (value: unknown) => boolean;

const isText = (v: unknown) => typeof v === 'string';
const isTextOrArray = (v: unknown) => typeof v === 'string' || (Array.isArray(v) && v.length > 0);
const isMessages = (v: unknown) =>
  Array.isArray(v) && v.length > 0 && v.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m));

const REQUIRED: Record<InferenceRoute, { param: string; check: Check; expected: string }> = {
  chat: { param: 'messages', check: isMessages, expected: 'a non-empty array of message objects' },
  completions: { param: 'prompt', check: isTextOrArray, expected: 'a string or a non-empty array' },
  embeddings: { param: 'input', check: isTextOrArray, expected: 'a string or a non-empty array' },
};

export function validateInferenceBody(route: InferenceRoute, raw: unknown): InferenceBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw badRequest('Request body must be a JSON object (Content-Type: application/json).', null, 'invalid_body');
  }
  const body = raw as Record<string, unknown>;
  if (body.model === undefined)
    throw badRequest('You must provide a model parameter.', 'model', 'missing_required_parameter');
  if (!isText(body.model) || body.model === '')
    throw badRequest('model must be a non-empty string.', 'model', 'invalid_type');
  const required = REQUIRED[route];
  const value = body[required.param];
  if (value === undefined) {
    throw badRequest(`Missing required parameter: '${required.param}'.`, required.param, 'missing_required_parameter');
  }
  if (!required.check(value)) {
    throw badRequest(`${required.param} must be ${required.expected}.`, required.param, 'invalid_type');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw badRequest('stream must be a boolean.', 'stream', 'invalid_type');
  }
  const options = body.stream_options;
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    throw badRequest('stream_options must be an object.', 'stream_options', 'invalid_type');
  }
  const stream = route !== 'embeddings' && body.stream === true;
  const wantsUsage = stream && (options as { include_usage?: unknown } | null | undefined)?.include_usage === true;
  return { body, model: body.model as string, stream, wantsUsage };
}
