import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Response } from 'express';
import { ApiError, isOpenAIErrorBody, sendApiError, serviceUnavailable } from '@gguf-gateway/shared';
import type { Backend } from '../routing/backend-state.js';
import { kindOf } from '../routing/backend-kinds.js';
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
  'connect' | 'timeout' | 'idle_timeout' | 'reset' | 'status_5xx' | 'status_429' | 'backend_auth' | 'model_not_loaded';

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
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

const agents = new Map<string, http.Agent>();

/** One connection pool per protocol and idle timeout (one timeout per process in practice). */
function agentFor(protocol: 'http:' | 'https:', idleMs: number): http.Agent {
  const key = `${protocol}${idleMs}`;
  let agent = agents.get(key);
  if (!agent) {
    const options = { keepAlive: true, maxSockets: 4096, scheduling: 'lifo' as const, timeout: idleMs };
    agent = protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
    agents.set(key, agent);
  }
  return agent;
}

/** Closes the pool's idle connections to a backend (the agent names its pools `host:port:...`). */
function dropIdleSockets(agent: http.Agent, url: URL): void {
  const origin = `${url.hostname}:${url.port || (url.protocol === 'https:' ? 443 : 80)}:`;
  for (const [name, sockets] of Object.entries(agent.freeSockets)) {
    if (name.startsWith(origin)) for (const socket of sockets ?? []) socket.destroy();
  }
}

/** A reused connection the backend closed as the request went out: no byte of an answer came. */
const STALE_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

const transports = { 'http:': http, 'https:': https };

type AnsweredFailure = Exclude<UpstreamFailure, 'status_5xx' | 'status_429' | 'model_not_loaded'>;

/** Backend errors the gateway words itself; the client gets the OpenAI shape. */
const FAILURE_ERRORS: Record<AnsweredFailure, (backend: Backend) => ApiError> = {
  connect: () =>
    serviceUnavailable('The model backend is unavailable; retry shortly.', RETRY_AFTER_SEC, 'backend_unavailable'),
  timeout: () =>
    new ApiError(504, 'The model backend did not answer in time.', { code: 'backend_timeout', type: 'server_error' }),
  idle_timeout: () =>
    new ApiError(504, 'The model backend stopped sending.', { code: 'backend_timeout', type: 'server_error' }),
  reset: () =>
    new ApiError(502, 'The model backend closed the connection.', { code: 'backend_error', type: 'server_error' }),
  // Names the variable that holds the key, never the key.
  backend_auth: (backend) =>
    new ApiError(502, kindOf(backend).keyHint(backend), { code: 'backend_auth_failed', type: 'server_error' }),
};

/** Failures after which another backend may be tried, when nothing has reached the client yet. */
const RETRYABLE = new Set<UpstreamFailure>(['connect', 'reset', 'status_5xx', 'status_429', 'backend_auth']);

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

export function proxyToBackend(request: ProxyRequest, timeouts: UpstreamTimeouts): Promise<ProxyOutcome> {
  const { backend, res } = request;
  const protocol = backend.url.protocol as keyof typeof transports;
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': request.body.length,
    'x-request-id': request.requestId,
    ...request.forwardHeaders,
  };
  if (backend.apiKey) headers.authorization = `Bearer ${backend.apiKey}`;
  const started = performance.now();

  return new Promise((resolve) => {
    let done = false;
    let ttftMs: number | null = null;
    let tap: SseUsageTap | JsonBodyTap | null = null;
    let upstreamRes: IncomingMessage | null = null;
    let accepted = false;

    let retriedStaleSocket = false;
    const send = () =>
      transports[protocol].request({
        protocol,
        hostname: backend.url.hostname,
        port: backend.url.port,
        path: backend.url.pathname.replace(/\/$/, '') + request.path,
        method: 'POST',
        headers,
        agent: agentFor(protocol, timeouts.keepAliveIdleMs),
      });
    let upstream = send();

    // One deadline at a time: connect, then first byte, then idle between chunks (refreshed per chunk).
    let timer = setTimeout(() => fail('connect'), timeouts.connectMs);
    const arm = (reason: 'timeout' | 'idle_timeout', ms: number) => {
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

    /** Hands the request back to the caller untouched, for the next backend. */
    const handBack = (failure: UpstreamFailure, status: number): boolean => {
      const elsewhere = request.canRetry && RETRYABLE.has(failure);
      const later = request.canWait && (failure === 'connect' || failure === 'reset');
      if ((!elsewhere && !later) || res.headersSent) return false;
      upstream.destroy();
      finish(status, null, failure, true);
      return true;
    };

    function fail(reason: AnsweredFailure) {
      if (done) return;
      if (upstreamRes === null && handBack(reason, 502)) return;
      upstream.destroy();
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
      upstream.destroy();
      res.destroy();
      finish(499, 'client_stalled', null);
    }

    function listen() {
      upstream.on('socket', (socket) => {
        if (!socket.connecting) return arm('timeout', timeouts.firstByteMs);
        socket.once('connect', () => arm('timeout', timeouts.firstByteMs));
      });
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        // Destroying the request ourselves (client gone, answered already) reports a reset too.
        if (done) return;
        if (
          upstreamRes === null &&
          upstream.reusedSocket &&
          !retriedStaleSocket &&
          STALE_SOCKET_ERRORS.has(err.code ?? '')
        ) {
          // The backend closed an idle connection just as the request went out: once more on a new one.
          retriedStaleSocket = true;
          clearTimeout(timer);
          timer = setTimeout(() => fail('connect'), timeouts.connectMs);
          // On a new connection, not the next pooled one: a backend may close several at once
          // (llama-server's router does when it starts a model), so its idle ones go too.
          dropIdleSockets(agentFor(protocol, timeouts.keepAliveIdleMs), backend.url);
          upstream = send();
          listen();
          upstream.end(request.body);
          return;
        }
        fail(upstreamRes === null && UNREACHABLE.has(err.code ?? '') ? 'connect' : 'reset');
      });
      upstream.on('response', onResponse);
    }
    listen();

    res.on('close', () => {
      if (done) return;
      // The client went away: stop the backend's work so llama.cpp frees the slot.
      upstream.destroy();
      finish(499, 'client_aborted', null);
    });

    function onResponse(incoming: IncomingMessage) {
      upstreamRes = incoming;
      const status = incoming.statusCode ?? 502;
      if (status === 401 || status === 403) {
        if (handBack('backend_auth', status)) return void incoming.resume();
        // The client's key never goes upstream, so a 401 is about the gateway's; a 403 may be the
        // provider's refusal of this prompt (moderation), relayed as the provider worded it.
        if (status === 401) return void (incoming.resume(), fail('backend_auth'));
        return relayRefusal(incoming, status);
      }
      const refusal = status === 429 ? 'status_429' : status >= 500 ? 'status_5xx' : null;
      if (refusal && handBack(refusal, status)) {
        incoming.resume();
        return;
      }
      if (refusal) return relayRefusal(incoming, status);
      if (status === 400 && request.handBackNotLoaded && !res.headersSent)
        return relayError(incoming, status, null, true);
      if (status >= 400 && request.errorShape !== 'openai') return relayError(incoming, status, null);
      accepted = status < 400;
      arm('idle_timeout', timeouts.idleMs);
      const contentType = incoming.headers['content-type'] ?? 'application/json';
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
      incoming.on('data', (chunk: Buffer) => {
        if (done) return;
        ttftMs ??= performance.now() - started;
        timer.refresh();
        const out = sink.push(chunk);
        if (out.length > 0 && !res.write(out)) {
          // The client reads slowly: its stall is not the backend's, so no idle deadline meanwhile;
          // one that stops reading would hold the backend's slot forever, so it has its own deadline.
          clearTimeout(timer);
          timer = setTimeout(cutStalledClient, timeouts.clientStallMs);
          incoming.pause();
          res.once('drain', () => {
            if (done) return;
            arm('idle_timeout', timeouts.idleMs);
            incoming.resume();
          });
        }
      });
      incoming.on('end', () => {
        if (done) return;
        const rest = sink instanceof SseUsageTap ? sink.flush() : Buffer.alloc(0);
        res.end(rest);
        finish(status, status >= 400 ? `backend_status_${status}` : null, null);
      });
      incoming.on('close', () => {
        if (!incoming.complete) fail('reset');
      });
    }

    /**
     * A 403, 429 or 5xx no other backend may take: relayed with its Retry-After when it is an OpenAI error;
     * else (an HTML page, a proxy's text) the gateway words it in the OpenAI shape.
     */
    function relayRefusal(incoming: IncomingMessage, status: number) {
      relayError(incoming, status, status === 429 ? 'status_429' : status === 403 ? 'backend_auth' : 'status_5xx');
    }

    /** A backend's error answer, in the route's error shape; a refusal (429, 5xx) counts as a failure. */
    function relayError(incoming: IncomingMessage, status: number, failure: UpstreamFailure | null, notLoaded = false) {
      arm('timeout', timeouts.idleMs);
      const retryAfter = incoming.headers['retry-after'];
      const chunks: Buffer[] = [];
      let size = 0;
      incoming.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_ERROR_BODY_BYTES) chunks.push(chunk);
      });
      incoming.on('end', () => {
        if (done) return;
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
      });
      incoming.on('close', () => {
        if (!incoming.complete) fail('reset');
      });
    }

    upstream.end(request.body);
  });
}
