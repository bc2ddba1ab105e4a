import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { ApiError, sendApiError, serviceUnavailable, type Logger, type UsageEvent } from '@gguf-gateway/shared';
import {
  CLIENT_GONE,
  proxyToBackend,
  type ProxyOutcome,
  type UpstreamFailure,
  type UpstreamTimeouts,
} from './backend.proxy.js';
import type { BackendState } from '../routing/backend-state.js';
import type { GatewayMetrics } from '../gateway.metrics.js';
import type { ModelRoute, ModelRouter } from '../routing/model-router.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import type { ApiRoute } from './api-routes.js';
import { chargeEveryOutput, outputCount } from './multi-output.metering.js';
import { validateInferenceBody, type InferenceBody } from './request-validation.js';
import type { UsageEventsPublisher } from './usage-events.publisher.js';
import { combineUsage, type UpstreamUsage } from './usage-readers.js';
import { upstreamPayload, type PayloadSource } from './upstream-payload.js';
import { rawJsonOf } from '../http/json-body.middleware.js';
import { backendsFit, onlyModel } from './backend-fit.js';
import { usageProblem } from './usage-validation.js';
import type { ModelsService } from '../models/models.service.js';
import type { Release } from '../models/model-admission.js';

/** Client headers the backend needs to read the request as the client meant it. */
const FORWARDED_HEADERS = ['anthropic-version', 'anthropic-beta'];
/** The choices of an `n` > 1 answer are kept up to this size to meter each; past it they are estimated. */
const MAX_CHOICES_BYTES = 4 * 1024 * 1024;

// When a backend took a request on and never reported usage (client abort, backend failure), count about four bytes of
// request per prompt token and one streamed event per completion token.
const BYTES_PER_TOKEN_ESTIMATE = 4;
const DEFAULT_LEASE_TTL_SEC = 60;
/** Failures of the connection itself, which count towards cooling a backend down. */
const TRANSPORT_FAILURES = new Set<UpstreamFailure>(['connect', 'timeout', 'idle_timeout', 'reset']);
const NO_USAGE: UpstreamUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };

export interface InferenceDeps {
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  usageStream: UsageEventsPublisher;
  metrics: GatewayMetrics;
  logger: Logger;
  timeouts: UpstreamTimeouts;
  /** Backends one request may try, the first included. */
  maxAttempts: number;
  /** How long a request may wait for a backend of its model to come back (a restart) before 503. */
  waitForBackendMs: number;
  /** Models on demand: a model the backends file does not name is looked up here (null: off). */
  models: ModelsService | null;
}

/** One request on its way to a backend. */
interface Call {
  route: ApiRoute;
  input: InferenceBody;
  payload: PayloadSource;
  requestId: string;
  forwardHeaders: Record<string, string>;
  res: Response;
  /** A model on demand's first try: the router's "model is not loaded" comes back instead of being relayed. */
  handBackNotLoaded: boolean;
}

function forwardedHeaders(req: Request): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = req.get(name);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

interface ServedBy {
  outcome: ProxyOutcome;
  /** The backend of the last attempt; null when none could be tried. */
  backend: BackendState | null;
  attempts: number;
}

/** One inference request: validate, authorize, proxy, then settle and record usage exactly once. */
export class InferenceService {
  constructor(private readonly deps: InferenceDeps) {}

  async handle(route: ApiRoute, req: Request, res: Response): Promise<void> {
    const { router, authorizer, metrics } = this.deps;
    res.locals.route = route.name;
    const started = performance.now();
    const requestId = res.getHeader('x-request-id') as string;
    // The usage row's key: a client may reuse its own id, so one it sent is not unique enough.
    const clientRequestId = req.get('x-request-id') === requestId ? requestId : undefined;
    const usageId = clientRequestId === undefined ? requestId : randomUUID();
    if (usageId !== requestId) res.locals.usageId = usageId;
    const input = validateInferenceBody(route, req.body, () => onlyModel(router));
    const routed = router.resolve(input.model);
    // A model the backends file does not name may be a model on disk, served by the models router.
    const onDemand = routed ? null : ((await this.deps.models?.target(input.model)) ?? null);
    const target = routed ?? onDemand?.route ?? null;
    res.locals.model = target?.model ?? 'unknown';
    const decision = await authorizer.authorize(req, res, route.name, target?.model ?? input.model);
    if (!target) {
      authorizer.settle(decision.lease, requestId);
      throw new ApiError(404, `The model '${input.model}' does not exist.`, {
        code: 'model_not_found',
        param: 'model',
      });
    }
    // Backends of a kind that does not serve the route are never tried.
    const { unfit, none } = backendsFit(target, route);
    if (none) {
      authorizer.settle(decision.lease, requestId);
      throw new ApiError(
        404,
        `The model '${input.model}' is not served on ${route.paths[0]}: its backends do not offer it.`,
        {
          code: 'route_not_supported',
          param: 'model',
        },
      );
    }

    const upstreamBody: Record<string, unknown> = { ...input.body, model: input.model };
    const asksUsage = input.stream && route.streamUsageOption;
    if (asksUsage) {
      // Always ask for usage so the request can be metered; the chunk is removed again below
      // unless the client asked for it too.
      upstreamBody.stream_options = { ...(input.body.stream_options as object | undefined), include_usage: true };
    }

    const stopRenewing = authorizer.keepLeaseAlive(
      decision.lease,
      decision.leaseTtlSec ?? DEFAULT_LEASE_TTL_SEC,
      requestId,
    );
    // A slot on a model on demand (loading it first if needed), held until the response has ended.
    let releaseModel: Release | null = null;
    if (onDemand) {
      try {
        if (onDemand.problem) throw onDemand.problem;
        releaseModel = await this.deps.models!.acquire(onDemand.model, res);
      } catch (err) {
        stopRenewing();
        authorizer.settle(decision.lease, requestId);
        throw err;
      }
    }
    metrics.inFlight.inc({ model: target.model });
    let served: ServedBy;
    try {
      const call: Call = {
        route,
        input,
        payload: { client: input.body, raw: rawJsonOf(req), upstream: upstreamBody, asksUsage },
        requestId,
        forwardHeaders: forwardedHeaders(req),
        res,
        handBackNotLoaded: onDemand !== null,
      };
      served = await this.proxyWithRetries(target, unfit, call);
      if (onDemand && served.outcome.failure === 'model_not_loaded') {
        // Its process died since the last sync with the router: load it again, and try once more.
        releaseModel?.();
        releaseModel = null;
        this.deps.models!.notLoaded(onDemand.model);
        try {
          releaseModel = await this.deps.models!.acquire(onDemand.model, res);
        } catch (err) {
          authorizer.settle(decision.lease, requestId);
          throw err;
        }
        served = await this.proxyWithRetries(target, unfit, { ...call, handBackNotLoaded: false });
      }
    } finally {
      stopRenewing();
      releaseModel?.();
      metrics.inFlight.dec({ model: target.model });
    }
    const { outcome } = served;
    res.locals.status = outcome.status;

    // A request no backend took on (down, refused, timed out before answering) costs the key nothing.
    // A stream cut short (client gone, backend failed) may have reported its prompt and not yet its
    // output (Anthropic's message_start): the output is then counted from the streamed events.
    const cutShort = outcome.accepted && input.stream && outcome.errorCode !== null;
    const whole = outcome.accepted
      ? this.checkedUsage(combineUsage(route.usage, outcome.reports), served, requestId)
      : null;
    const reported = whole && cutShort && whole.completionTokens < outcome.contentEvents ? null : whole;
    const usage =
      reported && served.backend && outcome.status < 400
        ? await chargeEveryOutput(input.outputs, {
            usage: reported,
            reportCount: outcome.reports.length,
            choices: outcome.choices,
            body: upstreamBody,
            backend: served.backend.backend,
            timeoutMs: this.deps.timeouts.connectMs + this.deps.timeouts.firstByteMs,
          })
        : (reported ??
          (outcome.accepted
            ? estimateUsage(
                whole?.promptTokens ??
                  Math.ceil(Buffer.byteLength(JSON.stringify(upstreamBody)) / BYTES_PER_TOKEN_ESTIMATE),
                outcome.contentEvents,
              )
            : NO_USAGE));
    authorizer.settle(decision.lease, requestId, usage.promptTokens, usage.completionTokens);
    metrics.tokens.inc({ model: target.model, kind: 'prompt' }, usage.promptTokens);
    metrics.tokens.inc({ model: target.model, kind: 'completion' }, usage.completionTokens);
    if (input.stream && outcome.ttftMs !== null) metrics.ttft.observe({ model: target.model }, outcome.ttftMs / 1000);

    this.record({
      requestId: usageId,
      clientRequestId,
      ts: new Date().toISOString(),
      keyId: decision.keyId,
      model: target.model,
      backend: served.backend?.name ?? '',
      route: route.name,
      status: outcome.status,
      stream: input.stream,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens,
      ttftMs: outcome.ttftMs === null ? null : Math.round(outcome.ttftMs),
      durationMs: Math.round(performance.now() - started),
      errorCode: outcome.errorCode,
      usageSource: reported ? 'upstream' : 'estimated',
    });
  }

  /**
   * Tries the route's backends in order (least busy of the first tier with one available, then the
   * next) until one answers or the budget is spent. An attempt is retried only while nothing has
   * reached the client; the body is rebuilt per backend, since each may expect its own model name.
   */
  private async proxyWithRetries(target: ModelRoute, unfit: ReadonlySet<BackendState>, call: Call): Promise<ServedBy> {
    const { router, metrics, timeouts, maxAttempts } = this.deps;
    const { route, input, requestId, res } = call;
    // Backends that cannot serve the route count as tried from the start.
    const tried = new Set<BackendState>(unfit);
    let attempts = 0;
    let last: ServedBy | null = null;
    const waitUntil = performance.now() + this.deps.waitForBackendMs;
    // Distinct backends tried, the unfit ones aside: a restarting one given back while waiting counts once.
    const triedCount = () => tried.size - unfit.size;
    while (triedCount() < maxAttempts) {
      // The client left while authorizing or while an attempt failed: nobody waits for a backend.
      if (res.destroyed) {
        return last
          ? { ...last, outcome: { ...last.outcome, status: 499, errorCode: 'client_aborted', retry: false } }
          : { outcome: CLIENT_GONE, backend: null, attempts: 0 };
      }
      const pick = router.pick(target, tried) ?? (await waitForBackend(router, target, tried, waitUntil, res));
      if (!pick) break;
      const { state, tier } = pick;
      tried.add(state);
      attempts += 1;
      res.setHeader('x-gateway-backend', state.name);
      res.setHeader('x-gateway-attempts', String(attempts));
      if (tier > 0) res.setHeader('x-gateway-fallback', String(tier));
      else res.removeHeader('x-gateway-fallback');

      const payload = upstreamPayload(call.payload, state.backend.model ?? target.model);
      const canRetry = triedCount() < maxAttempts && router.hasCandidate(target, tried);
      const canWait = performance.now() < waitUntil;
      state.inFlight += 1;
      metrics.backendRequests.inc({ backend: state.name });
      let outcome: ProxyOutcome;
      try {
        outcome = await proxyToBackend(
          {
            backend: state.backend,
            path: route.upstreamPath,
            body: payload,
            requestId,
            forwardHeaders: call.forwardHeaders,
            stripUsage: route.streamUsageOption && !input.wantsUsage,
            dialect: route.usage,
            errorShape: route.errors,
            model: input.model,
            keepChoicesBytes: outputCount(input.outputs) > 1 ? MAX_CHOICES_BYTES : 0,
            canRetry,
            canWait,
            handBackNotLoaded: call.handBackNotLoaded,
            res,
          },
          timeouts,
        );
      } finally {
        state.inFlight -= 1;
      }
      this.judge(state, outcome);
      last = { outcome, backend: state, attempts };
      // The caller loads the model again before another try.
      if (outcome.failure === 'model_not_loaded') return last;
      if (!outcome.retry) {
        if (tier > 0) metrics.backendFallbacks.inc({ model: target.model });
        return last;
      }
      // The only backend left went away before answering (a restart): it may take the request once back.
      if (canWait && !canRetry && (outcome.failure === 'connect' || outcome.failure === 'reset')) tried.delete(state);
      this.deps.logger.warn(
        { requestId, backend: state.name, failure: outcome.failure, attempt: attempts },
        'backend failed before answering; trying the next one',
      );
    }
    return this.noBackendLeft(target, res, last);
  }

  /** The backend's usage when it can be charged and recorded; null (so: estimated) when it is out of range. */
  private checkedUsage(usage: UpstreamUsage | null, served: ServedBy, requestId: string): UpstreamUsage | null {
    const problem = usage && usageProblem(usage);
    if (!problem) return usage;
    this.deps.logger.warn(
      { requestId, backend: served.backend?.name, problem },
      'the backend reported impossible usage: estimated instead',
    );
    return null;
  }

  /**
   * Feeds an attempt's result to the backend's circuit breaker and the metrics. Only the transport
   * cools a backend: an answer (a 5xx or 429 for this prompt, a provider's 4xx) says it is up, and a
   * 401/403 cools it only once a probe with the gateway's key is refused too.
   */
  private judge(state: BackendState, outcome: ProxyOutcome): void {
    const { failure } = outcome;
    if (failure === null) {
      if (outcome.status !== 499) state.succeeded();
      return;
    }
    this.deps.metrics.upstreamErrors.inc({ backend: state.name, reason: failure });
    this.deps.metrics.backendErrors.inc({ backend: state.name });
    if (failure === 'backend_auth') state.suspectKey();
    // Nothing listens there (a restart): out of rotation at once, back at the first probe it answers.
    else if (failure === 'connect') state.coolDown('not accepting connections');
    // A certificate that does not verify does not fix itself: out of rotation at once, as above.
    else if (failure === 'tls') state.coolDown('its TLS certificate could not be verified');
    else if (TRANSPORT_FAILURES.has(failure)) state.failed(failure);
  }

  /** Every candidate is cooling down, busy, or failed before answering: one clean error. */
  private noBackendLeft(target: ModelRoute, res: Response, last: ServedBy | null): ServedBy {
    const retryAfterSec = Math.max(1, Math.ceil((this.deps.router.nextRetryAt(target) - Date.now()) / 1000));
    const error =
      last?.outcome.failure === 'backend_auth'
        ? new ApiError(502, "Every backend of this model refused the gateway's API key.", {
            code: 'backend_auth_failed',
            type: 'server_error',
          })
        : serviceUnavailable(
            `No backend of the model '${target.model}' can take the request now${coolingReasons(target)}; retry shortly.`,
            retryAfterSec,
            'backend_unavailable',
          );
    sendApiError(res, error);
    const outcome: ProxyOutcome = {
      status: error.status,
      reports: [],
      choices: null,
      contentEvents: 0,
      ttftMs: null,
      errorCode: error.code,
      failure: last?.outcome.failure ?? null,
      retry: false,
      accepted: false,
    };
    return { outcome, backend: last?.backend ?? null, attempts: last?.attempts ?? 0 };
  }

  /** The request has its answer already: a lost event is counted, never turned into an error. */
  private record(event: UsageEvent): void {
    this.deps.usageStream.append(event).catch((err: unknown) => {
      this.deps.metrics.usageEventsDropped.inc();
      this.deps.logger.warn(
        { err, usageId: event.requestId, clientRequestId: event.clientRequestId },
        'usage event dropped',
      );
    });
  }
}

/**
 * " (a: connect, b: the backend refused the gateway's key)": why a model's backends are cooling down,
 * in the gateway's own words (a failure kind or state, never an address or an upstream error text).
 */
function coolingReasons(target: ModelRoute): string {
  const cooling = target.tiers.flat().filter((b) => b.health === 'cooling_down');
  return cooling.length === 0
    ? ''
    : ` (${cooling.map((b) => `${b.name}: ${b.lastProblem ?? 'cooling down'}`).join(', ')})`;
}

const WAIT_POLL_MS = 25;

/**
 * Waits until a backend of the route can take the request (one restarting, or all busy), until
 * `waitUntil` or the client leaves; null when none came. No wait when every backend was tried.
 */
async function waitForBackend(
  router: ModelRouter,
  target: ModelRoute,
  tried: ReadonlySet<BackendState>,
  waitUntil: number,
  res: Response,
): Promise<ReturnType<ModelRouter['pick']>> {
  if (!target.tiers.some((tier) => tier.some((b) => !tried.has(b)))) return null;
  while (performance.now() < waitUntil && !res.destroyed) {
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
    const pick = router.pick(target, tried);
    if (pick) return pick;
  }
  return null;
}

function estimateUsage(promptTokens: number, contentEvents: number): UpstreamUsage {
  return {
    promptTokens,
    completionTokens: contentEvents,
    cachedTokens: 0,
  };
}
