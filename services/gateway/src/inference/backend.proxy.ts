import type { Response } from 'express';
import type { Dispatcher } from 'undici';
import { ApiError, isOpenAIErrorBody, sendApiError, serviceUnavailable } from '@gguf-gateway/shared';
import type { Backend } from '../routing/backend-state.js';
import { kindOf } from '../routing/backend-kinds.js';
import { connectionsTo, type ConnectionAwareHandler } from './backend-connections.js';
import { backendErrorBody, renderError, type ErrorShape } from './error-shapes.js';
import { JsonBodyTap } from './json-body.tap.js';
import { SseUsageTap } from './usage.tap.js';
import type { UsageDialect, UsageReport } from './usage-readers.js';

// Sends one request to a backend and streams its answer to the client as it arrives, reading the
// token usage on the way. The client's Authorization never goes upstream: the backend's own key does.

export interface UpstreamTimeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  /** A client that takes no bytes for this long is cut, and the backend request with it. */
  clientStallMs: number;
  /**
   * An idle keep-alive connection to a backend is closed after this, before the backend closes it
   * (llama-server: 5 s), so a request is never sent on a socket the backend is closing.
   */
  keepAliveIdleMs: number;
}

export interface ProxyRequest {
  backend: Backend;
  path: string;
  body: Buffer;
  requestId: string;
  /** Headers the client sent that the backend should see (anthropic-version). */
  forwardHeaders: Record<string, string>;
  /** Remove usage from the streamed answer: the client did not ask for it. */
  stripUsage: boolean;
  /** How the route's answers report usage. */
  dialect: UsageDialect;
  /** The shape of the route's errors, also of a backend's error relayed on it. */
  errorShape: ErrorShape;
  /** The model name the client asked for: every answer and stream event carries it. */
  model: string;
  /** Keep a JSON answer's `choices` up to this many bytes (to meter every choice); 0: not needed. */
  keepChoicesBytes: number;
  /**
   * Another backend could take the request: a failure before any byte reached the client (connect,
   * reset, 5xx, 429, refused key) is then returned as `retry` instead of being answered.
   */
  canRetry: boolean;
  /**
   * The request may wait for this backend to come back (a restart): a connect failure, or a reset
   * before any byte of the answer, is then returned as `retry` too.
   */
  canWait: boolean;
  /**
   * llama-server's router: its 400 "model is not loaded" (the model's process died since the
   * gateway last looked) is returned as `retry` with failure `model_not_loaded`, before any byte
   * reaches the client, so the caller can load the model again and retry.
   */
  handBackNotLoaded?: boolean;
  res: Response;
}

export type UpstreamFailure =
  | 'connect'
  | 'tls'
  | 'timeout'
  | 'idle_timeout'
  | 'reset'
  | 'status_5xx'
  | 'status_429'
  | 'backend_auth'
  | 'model_not_loaded';

export interface ProxyOutcome {
  /** What the client got; 499 when it went away first. */
  status: number;
  /** Usage as the answer reported it, piece by piece (a stream reports per event). */
  reports: UsageReport[];
  /** A JSON answer's `choices`, when asked for. */
  choices: unknown[] | null;
  contentEvents: number;
  /** From sending the request to the first byte of the backend's body. */
  ttftMs: number | null;
  errorCode: string | null;
  failure: UpstreamFailure | null;
  /** Nothing reached the client and another backend may try: the caller retries. */
  retry: boolean;
  /** The backend took the request on (answered 2xx): only then may unreported usage be estimated. */
  accepted: boolean;
}

/** The outcome of a request whose client left before any backend was called. */
export const CLIENT_GONE: ProxyOutcome = {
  status: 499,
  reports: [],
  choices: null,
  contentEvents: 0,
  ttftMs: null,
  errorCode: 'client_aborted',
  failure: null,
  retry: false,
  accepted: false,
};

const RETRY_AFTER_SEC = 2;
/** A backend's error body larger than this is not an OpenAI error: the client gets the gateway's own. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The backend's certificate failed verification (OpenSSL's codes, as Node reports them), or the TLS
 * handshake itself did (ERR_SSL_*: an https URL for a plain-HTTP port): a setting to fix, not a restart.
 */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const isTlsFailure = (code: string) => CERTIFICATE_ERRORS.has(code) || code.startsWith('ERR_SSL_');

/** A connection the backend closed as the request went out on it: no byte of an answer came. */
const STALE_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

type AnsweredFailure = Exclude<UpstreamFailure, 'status_5xx' | 'status_429' | 'model_not_loaded'>;

/** Backend errors the gateway words itself; the client gets the OpenAI shape. */
const FAILURE_ERRORS: Record<AnsweredFailure, (backend: Backend) => ApiError> = {
  connect: () =>
    serviceUnavailable('The model backend is unavailable; retry shortly.', RETRY_AFTER_SEC, 'backend_unavailable'),
  timeout: () =>
    new ApiError(504, 'The model backend did not answer in time.', { code: 'backend_timeout', type: 'server_error' }),
  idle_timeout: () =>
    new ApiError(504, 'The model backend stopped sending.', { code: 'backend_timeout', type: 'server_error' }),
  tls: () =>
    new ApiError(
      502,
      "The model backend's TLS certificate could not be verified; check its URL, and NODE_EXTRA_CA_CERTS for a private CA.",
      { code: 'backend_tls_failed', type: 'server_error' },
    ),
  reset: () =>
    new ApiError(502, 'The model backend closed the connection.', { code: 'backend_error', type: 'server_error' }),
  // Names the variable that holds the key, never the key.
  backend_auth: (backend) =>
    new ApiError(502, kindOf(backend).keyHint(backend), { code: 'backend_auth_failed', type: 'server_error' }),
};

/** Failures after which another backend may be tried, when nothing has reached the client yet. */
const RETRYABLE = new Set<UpstreamFailure>(['connect', 'tls', 'reset', 'status_5xx', 'status_429', 'backend_auth']);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
}

/**
 * The SSE event that ends a stream cut after it started: the status line is gone already. It is in
 * the route's shape (Anthropic streams name it `event: error`) and starts on a fresh line when the
 * client has part of an event.
 */
function sseError(error: ApiError, shape: ErrorShape, midEvent: boolean): string {
  const named = shape === 'anthropic' ? 'event: error\n' : '';
  return `${midEvent ? '\n\n' : ''}${named}data: ${JSON.stringify(renderError(shape, error))}\n\n`;
}

/** A response header's value, from undici's raw list (name, value, name, value...). */
function headerOf(raw: Buffer[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.length === name.length && key.toString('latin1').toLowerCase() === name)
      return raw[i + 1]!.toString('latin1');
  }
  return undefined;
}

export function proxyToBackend(request: ProxyRequest, timeouts: UpstreamTimeouts): Promise<ProxyOutcome> {
  const { backend, res } = request;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-request-id': request.requestId,
    ...request.forwardHeaders,
  };
  if (backend.apiKey) headers.authorization = `Bearer ${backend.apiKey}`;
  const dispatchOptions: Dispatcher.DispatchOptions = {
    path: backend.url.pathname.replace(/\/$/, '') + request.path,
    method: 'POST',
    headers,
    body: request.body,
  };
  const started = performance.now();

  return new Promise((resolve) => {
    let done = false;
    let ttftMs: number | null = null;
    let tap: SseUsageTap | JsonBodyTap | null = null;
    /** The backend's status line and headers came. */
    let answered = false;
    let accepted = false;
    /** Stops the request on its socket (set once it is on one). */
    let abort: ((err?: Error) => void) | null = null;
    /** Lets the paused answer flow again. */
    let resumeAnswer: () => void = () => undefined;
    /** Where the answer's bytes go (false: pause it), and what its end does; set by its status. */
    let onBody: (chunk: Buffer) => boolean = () => true;
    let onEnd: () => void = () => undefined;
    let retriedStaleSocket = false;

    // One deadline at a time: connect, then first byte, then idle between chunks (refreshed per chunk).
    let timer = setTimeout(() => fail('connect'), timeouts.connectMs);
    const arm = (reason: 'connect' | 'timeout' | 'idle_timeout', ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(reason), ms);
    };

    const finish = (status: number, errorCode: string | null, failure: UpstreamFailure | null, retry = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({
        status,
        reports: tap instanceof SseUsageTap ? tap.reports : tap?.usage ? [tap.usage] : [],
        choices: tap instanceof JsonBodyTap ? tap.choices : null,
        contentEvents: tap instanceof SseUsageTap ? tap.contentEvents : 0,
        ttftMs,
        errorCode,
        failure,
        retry,
        accepted,
      });
    };

    /** The gateway ended the backend's side itself: the errors that follow are its own doing. */
    let stopped = false;
    /** Ends the backend's side: its socket is closed, so llama.cpp frees the slot. */
    const stopUpstream = () => {
      stopped = true;
      abort?.();
    };

    /** Hands the request back to the caller untouched, for the next backend. */
    const handBack = (failure: UpstreamFailure, status: number): boolean => {
      const elsewhere = request.canRetry && RETRYABLE.has(failure);
      const later = request.canWait && (failure === 'connect' || failure === 'reset');
      if ((!elsewhere && !later) || res.headersSent) return false;
      stopUpstream();
      finish(status, null, failure, true);
      return true;
    };

    function fail(reason: AnsweredFailure) {
      if (done) return;
      if (!answered && handBack(reason, 502)) return;
      stopUpstream();
      const error = FAILURE_ERRORS[reason](backend);
      if (!res.headersSent) {
        sendApiError(res, error);
      } else if (tap instanceof SseUsageTap) {
        // Mid-stream: the client has text already, so it gets an error event, never a second answer.
        res.end(sseError(error, request.errorShape, tap.midEvent));
      } else {
        res.destroy();
      }
      finish(error.status, error.code, reason);
    }

    function cutStalledClient() {
      if (done) return;
      stopUpstream();
      res.destroy();
      finish(499, 'client_stalled', null);
    }

    /** Sends the request on one of the backend's pooled connections. */
    function send() {
      if (stopped) return;
      const handler: ConnectionAwareHandler = {
        onConnect(abortRequest) {
          // The request gave up (deadline, client gone) while its connection was being made.
          if (stopped) return abortRequest();
          abort = abortRequest;
          arm('timeout', timeouts.firstByteMs);
        },
        onHeaders(status, rawHeaders, resume) {
          if (done) return false;
          answered = true;
          resumeAnswer = resume;
          onResponse(status, rawHeaders);
          return !done;
        },
        onData: (chunk) => done || onBody(chunk),
        onComplete: () => {
          if (!done) onEnd();
        },
        onError(err: NodeJS.ErrnoException) {
          // Stopping the request ourselves (client gone, answered already) reports an error too.
          if (done || stopped) return;
          if (answered) return fail('reset');
          const code = err.code ?? '';
          if (handler.reusedConnection && !retriedStaleSocket && STALE_SOCKET_ERRORS.has(code)) {
            // The backend closed an idle connection just as the request went out: once more, after
            // the pool has dropped that connection, and those the backend closed with it (llama-server's
            // router closes several at once as it starts a model). It opens a new one unless it has
            // another idle one.
            retriedStaleSocket = true;
            abort = null;
            arm('connect', timeouts.connectMs);
            return void setImmediate(send);
          }
          fail(UNREACHABLE.has(code) ? 'connect' : isTlsFailure(code) ? 'tls' : 'reset');
        },
      };
      connectionsTo(backend.url, timeouts.keepAliveIdleMs, timeouts.connectMs).dispatch(dispatchOptions, handler);
    }

    res.on('close', () => {
      if (done) return;
      // The client went away: stop the backend's work so llama.cpp frees the slot.
      stopUpstream();
      finish(499, 'client_aborted', null);
    });

    function onResponse(status: number, rawHeaders: Buffer[]) {
      if (status === 401 || status === 403) {
        if (handBack('backend_auth', status)) return;
        // The client's key never goes upstream, so a 401 is about the gateway's; a 403 may be the
        // provider's refusal of this prompt (moderation), relayed as the provider worded it.
        if (status === 401) return fail('backend_auth');
        return relayRefusal(status, rawHeaders);
      }
      const refusal = status === 429 ? 'status_429' : status >= 500 ? 'status_5xx' : null;
      if (refusal && handBack(refusal, status)) return;
      if (refusal) return relayRefusal(status, rawHeaders);
      if (status === 400 && request.handBackNotLoaded && !res.headersSent)
        return relayError(status, rawHeaders, null, true);
      if (status >= 400 && request.errorShape !== 'openai') return relayError(status, rawHeaders, null);
      accepted = status < 400;
      arm('idle_timeout', timeouts.idleMs);
      const contentType = headerOf(rawHeaders, 'content-type') ?? 'application/json';
      const isStream = contentType.startsWith('text/event-stream');
      res.status(status);
      res.setHeader('content-type', contentType);
      if (isStream) {
        res.setHeader('cache-control', 'no-cache');
        res.setHeader('x-accel-buffering', 'no');
        res.flushHeaders();
        tap = new SseUsageTap({ dialect: request.dialect, stripUsage: request.stripUsage, model: request.model });
      } else {
        // The model name is rewritten on the way, so the length changes: the answer goes out chunked.
        tap = new JsonBodyTap({
          dialect: request.dialect,
          model: request.model,
          keepChoicesBytes: request.keepChoicesBytes,
        });
      }
      const sink = tap;
      onBody = (chunk) => {
        ttftMs ??= performance.now() - started;
        timer.refresh();
        const out = sink.push(chunk);
        if (out.length === 0 || res.write(out)) return true;
        // The client reads slowly: its stall is not the backend's, so no idle deadline meanwhile;
        // one that stops reading would hold the backend's slot forever, so it has its own deadline.
        clearTimeout(timer);
        timer = setTimeout(cutStalledClient, timeouts.clientStallMs);
        res.once('drain', () => {
          if (done) return;
          arm('idle_timeout', timeouts.idleMs);
          resumeAnswer();
        });
        return false;
      };
      onEnd = () => {
        const rest = sink instanceof SseUsageTap ? sink.flush() : Buffer.alloc(0);
        res.end(rest);
        finish(status, status >= 400 ? `backend_status_${status}` : null, null);
      };
    }

    /**
     * A 403, 429 or 5xx no other backend may take: relayed with its Retry-After when it is an OpenAI error;
     * else (an HTML page, a proxy's text) the gateway words it in the OpenAI shape.
     */
    function relayRefusal(status: number, rawHeaders: Buffer[]) {
      relayError(status, rawHeaders, status === 429 ? 'status_429' : status === 403 ? 'backend_auth' : 'status_5xx');
    }

    /** A backend's error answer, in the route's error shape; a refusal (429, 5xx) counts as a failure. */
    function relayError(status: number, rawHeaders: Buffer[], failure: UpstreamFailure | null, notLoaded = false) {
      arm('timeout', timeouts.idleMs);
      const retryAfter = headerOf(rawHeaders, 'retry-after');
      const chunks: Buffer[] = [];
      let size = 0;
      onBody = (chunk) => {
        size += chunk.length;
        if (size <= MAX_ERROR_BODY_BYTES) chunks.push(chunk);
        return true;
      };
      onEnd = () => {
        const body = Buffer.concat(chunks);
        const json = size <= MAX_ERROR_BODY_BYTES ? parseJson(body) : null;
        // Nothing of it reaches the client: the caller loads the model again and retries.
        if (notLoaded && (json as { error?: { message?: unknown } } | null)?.error?.message === 'model is not loaded') {
          return finish(status, null, 'model_not_loaded', true);
        }
        if (retryAfter !== undefined) res.setHeader('retry-after', retryAfter);
        if (isOpenAIErrorBody(json) || (failure === null && json !== null)) {
          res.status(status).json(backendErrorBody(request.errorShape, status, json));
          return finish(status, `backend_status_${status}`, failure);
        }
        if (failure === null) {
          sendApiError(res, new ApiError(status, 'The model backend refused the request.', { code: 'backend_error' }));
          return finish(status, `backend_status_${status}`, null);
        }
        const error =
          failure === 'backend_auth'
            ? FAILURE_ERRORS.backend_auth(backend)
            : status === 429
              ? new ApiError(429, 'The model backend is over its rate limit; retry later.', {
                  code: 'backend_rate_limited',
                })
              : new ApiError(502, 'The model backend failed to answer.', {
                  code: 'backend_error',
                  type: 'server_error',
                });
        sendApiError(res, error);
        finish(error.status, error.code, failure);
      };
    }

    send();
  });
}
