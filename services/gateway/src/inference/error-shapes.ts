import type { Response } from 'express';
import { ApiError, isOpenAIErrorBody } from '@gguf-gateway/shared';

// A route's errors come in the shape its clients parse: the OpenAI one everywhere, the Anthropic
// one (`{"type":"error","error":{"type","message"}}`) on the Messages routes. The status, headers
// and message are the same in both.

export type ErrorShape = 'openai' | 'anthropic';

/** Anthropic's error types by status (https://docs.anthropic.com/en/api/errors). */
const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

export function anthropicErrorBody(error: ApiError): unknown {
  return {
    type: 'error',
    error: {
      type: ANTHROPIC_TYPES[error.status] ?? (error.status >= 500 ? 'api_error' : 'invalid_request_error'),
      message: error.message,
    },
  };
}

const RENDERERS: Record<ErrorShape, (error: ApiError) => unknown> = {
  openai: (error) => error.toBody(),
  anthropic: anthropicErrorBody,
};

/** Every error sent on this response from now on (sendApiError, the error middleware) takes the shape. */
export function useErrorShape(res: Response, shape: ErrorShape): void {
  res.locals.renderError = RENDERERS[shape];
}

export function renderError(shape: ErrorShape, error: ApiError): unknown {
  return RENDERERS[shape](error);
}

/**
 * A backend's error body in the route's shape: an OpenAI-shaped body (llama-server answers errors
 * so on every route) is reworded for Anthropic clients; anything else is left as the backend sent it.
 */
export function backendErrorBody(shape: ErrorShape, status: number, body: unknown): unknown {
  if (shape === 'openai' || !isOpenAIErrorBody(body)) return body;
  return anthropicErrorBody(new ApiError(status, body.error.message));
}
