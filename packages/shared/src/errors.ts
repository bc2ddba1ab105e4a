import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'api_error';

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

export interface ApiErrorOptions {
  type?: OpenAIErrorType;
  code?: string | null;
  param?: string | null;
  headers?: Record<string, string>;
}

const TYPE_BY_STATUS: Record<number, OpenAIErrorType> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** An error a client should see, in the OpenAI shape, with its HTTP status and headers. */
export class ApiError extends Error {
  readonly type: OpenAIErrorType;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    message: string,
    options: ApiErrorOptions = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.type = options.type ?? TYPE_BY_STATUS[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.code = options.code ?? null;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  static fromBody(status: number, body: OpenAIErrorBody, headers: Record<string, string> = {}): ApiError {
    const { message, type, param, code } = body.error;
    return new ApiError(status, message, { type, param, code, headers });
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, { param, code });

export const notFound = (message: string, code: string | null = null) => new ApiError(404, message, { code });

export const serviceUnavailable = (message: string, retryAfterSec: number, code = 'service_unavailable') =>
  new ApiError(503, message, { code, type: 'server_error', headers: { 'Retry-After': String(retryAfterSec) } });

export function isOpenAIErrorBody(value: unknown): value is OpenAIErrorBody {
  const error = (value as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  return typeof error === 'object' && error !== null && typeof error.message === 'string';
}

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

/** Errors thrown by express.json() become the OpenAI shape: 413 for size, 400 for syntax. */
function fromBodyParser(err: BodyParserError): ApiError | null {
  if (err.type === 'entity.too.large') {
    return new ApiError(413, `Request body is larger than the ${err.limit ?? ''} byte limit.`.replace('  ', ' '), {
      code: 'request_too_large',
    });
  }
  if (err.type === 'entity.parse.failed') {
    return badRequest('Request body is not valid JSON.', null, 'invalid_json');
  }
  if (err.type === 'encoding.unsupported' || err.type === 'charset.unsupported') {
    return badRequest('Request body encoding is not supported; send UTF-8 JSON.', null, 'unsupported_encoding');
  }
  if (err.type === 'request.aborted') return badRequest('Request body was cut off.', null, 'request_aborted');
  return null;
}

export function sendApiError(res: Parameters<RequestHandler>[1], error: ApiError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  // A route whose clients parse another error shape (the gateway's Anthropic routes) sets its renderer.
  const render = res.locals.renderError as ((error: ApiError) => unknown) | undefined;
  res
    .status(error.status)
    .set(error.headers)
    .json(render ? render(error) : error.toBody());
}

/** The one error middleware: known errors keep their status; anything else is a logged 500. */
export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    const error =
      err instanceof ApiError
        ? err
        : (fromBodyParser(err as BodyParserError) ??
          new ApiError(500, 'The server had an error while processing your request.', { code: 'internal_error' }));
    if (error.status >= 500 && !(err instanceof ApiError)) logger.error({ err }, 'unhandled error');
    sendApiError(res, error);
  };
}

/** JSON 404 for routes that do not exist, instead of express's HTML page. */
export const notFoundHandler: RequestHandler = (req, res) => {
  sendApiError(res, new ApiError(404, `Unknown route: ${req.method} ${req.path}`, { code: 'unknown_route' }));
};
