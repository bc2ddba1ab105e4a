import type { ApiRouteName, BackendKind } from '@gguf-gateway/shared';
import { BACKEND_KINDS } from '../routing/backend-kinds.js';
import type { ErrorShape } from './error-shapes.js';
import type { UsageDialect } from './usage-readers.js';

// Every inference route the gateway serves, as data: the router mounts each path, the service
// validates, authorizes, routes, proxies and meters each the same way from its row. Adding a
// llama-server endpoint is adding a row.

type Check = (value: unknown) => boolean;

export interface RequiredParam {
  param: string;
  check: Check;
  expected: string;
}

export interface ApiRoute {
  name: ApiRouteName;
  /** What clients call (the first is the canonical one). */
  paths: readonly string[];
  /** What the backend serves it as, appended to the backend's URL. */
  upstreamPath: string;
  errors: ErrorShape;
  /** How the answer reports its token usage. */
  usage: UsageDialect;
  /** The backend kinds that serve it: a model served only by others answers 404 in the route's shape. */
  kinds: readonly BackendKind[];
  /** The fields the gateway relies on; the rest is the backend's to judge. */
  required: readonly RequiredParam[];
  /** The route streams when the body says `stream: true`. */
  streams: boolean;
  /** The stream reports usage only when asked (`stream_options.include_usage`): the gateway asks. */
  streamUsageOption: boolean;
  /** llama-server's own endpoints: a client may leave `model` out when the gateway serves one model. */
  modelOptional: boolean;
  /** Body fields the backend cannot honour, refused with 400 before any backend is called. */
  unsupported: readonly { param: string; when: Check; message: string }[];
}

const isText = (v: unknown) => typeof v === 'string';
const isTextOrArray = (v: unknown) => typeof v === 'string' || (Array.isArray(v) && v.length > 0);
const isArray = (v: unknown) => Array.isArray(v);
const isMessages = (v: unknown) =>
  Array.isArray(v) && v.length > 0 && v.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m));

const MESSAGES: RequiredParam = {
  param: 'messages',
  check: isMessages,
  expected: 'a non-empty array of message objects',
};
const INPUT: RequiredParam = { param: 'input', check: isTextOrArray, expected: 'a string or a non-empty array' };

const LLAMACPP: readonly BackendKind[] = ['llamacpp'];
const EVERY_KIND = Object.keys(BACKEND_KINDS) as BackendKind[];

// The Responses API is served statelessly: nothing is stored, so nothing can be continued.
const STATELESS = [
  {
    param: 'previous_response_id',
    when: (v: unknown) => v !== undefined && v !== null,
    message: 'previous_response_id is not supported: this server does not store responses; send the whole input.',
  },
  {
    param: 'store',
    when: (v: unknown) => v === true,
    message: 'store: true is not supported: this server does not store responses; leave it out or set it to false.',
  },
];

const row = (
  name: ApiRouteName,
  paths: readonly string[],
  upstreamPath: string,
  fields: Partial<Omit<ApiRoute, 'name' | 'paths' | 'upstreamPath'>>,
): ApiRoute => ({
  name,
  paths,
  upstreamPath,
  errors: 'openai',
  usage: 'none',
  kinds: LLAMACPP,
  required: [],
  streams: false,
  streamUsageOption: false,
  modelOptional: false,
  unsupported: [],
  ...fields,
});

export const API_ROUTE_TABLE: readonly ApiRoute[] = [
  row('chat', ['/v1/chat/completions'], '/v1/chat/completions', {
    usage: 'openai',
    kinds: EVERY_KIND,
    required: [MESSAGES],
    streams: true,
    streamUsageOption: true,
  }),
  row('completions', ['/v1/completions'], '/v1/completions', {
    usage: 'openai',
    kinds: EVERY_KIND,
    required: [{ param: 'prompt', check: isTextOrArray, expected: 'a string or a non-empty array' }],
    streams: true,
    streamUsageOption: true,
  }),
  row('embeddings', ['/v1/embeddings'], '/v1/embeddings', { usage: 'openai', kinds: EVERY_KIND, required: [INPUT] }),
  row('messages', ['/v1/messages'], '/v1/messages', {
    errors: 'anthropic',
    usage: 'anthropic',
    required: [MESSAGES],
    streams: true,
  }),
  row('count_tokens', ['/v1/messages/count_tokens'], '/v1/messages/count_tokens', {
    errors: 'anthropic',
    required: [MESSAGES],
  }),
  row('responses', ['/v1/responses'], '/v1/responses', {
    usage: 'responses',
    kinds: EVERY_KIND,
    required: [INPUT],
    streams: true,
    unsupported: STATELESS,
  }),
  row('chat_input_tokens', ['/v1/chat/completions/input_tokens'], '/v1/chat/completions/input_tokens', {
    required: [MESSAGES],
  }),
  row('responses_input_tokens', ['/v1/responses/input_tokens'], '/v1/responses/input_tokens', {
    required: [INPUT],
  }),
  row('rerank', ['/v1/rerank', '/v1/reranking', '/rerank'], '/v1/rerank', {
    usage: 'openai',
    // `documents` (Jina / Cohere) or `texts` (TEI): the backend judges which it got.
    required: [{ param: 'query', check: isText, expected: 'a string' }],
    modelOptional: true,
  }),
  row('tokenize', ['/tokenize'], '/tokenize', {
    required: [{ param: 'content', check: isTextOrArray, expected: 'a string' }],
    modelOptional: true,
  }),
  row('detokenize', ['/detokenize'], '/detokenize', {
    required: [{ param: 'tokens', check: isArray, expected: 'an array of token ids' }],
    modelOptional: true,
  }),
  row('apply_template', ['/apply-template'], '/apply-template', { required: [MESSAGES], modelOptional: true }),
  row('infill', ['/infill'], '/infill', { usage: 'llama', streams: true, modelOptional: true }),
];
