import type { Request, Response } from 'express';
import { ApiError, type Logger, type UsageEvent } from '@gguf-gateway/shared';
import { proxyToBackend, type ProxyOutcome, type UpstreamTimeouts } from './backend.proxy.js';
import type { GatewayMetrics } from './gateway.metrics.js';
import type { ModelRouter } from './model-router.js';
import type { RequestAuthorizer } from './request-authorizer.js';
import { validateInferenceBody, type InferenceRoute } from './request-validation.js';
import type { UsageStreamRepository } from './usage-stream.repository.js';
import type { UpstreamUsage } from './usage.tap.js';

const UPSTREAM_PATHS: Record<InferenceRoute, string> = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
};

// When a backend never reported usage (client abort, backend failure), count about four bytes of
// request per prompt token and one streamed event per completion token.
const BYTES_PER_TOKEN_ESTIMATE = 4;
const DEFAULT_LEASE_TTL_SEC = 60;

export interface InferenceDeps {
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  usageStream: UsageStreamRepository;
  metrics: GatewayMetrics;
  logger: Logger;
  timeouts: UpstreamTimeouts;
}

/** One inference request: validate, authorize, proxy, then settle and record usage exactly once. */
export class InferenceService {
  constructor(private readonly deps: InferenceDeps) {}

  async handle(route: InferenceRoute, req: Request, res: Response): Promise<void> {
    const { router, authorizer, metrics, timeouts } = this.deps;
    const started = performance.now();
    const requestId = res.getHeader('x-request-id') as string;
    const input = validateInferenceBody(route, req.body);
    const target = router.resolve(input.model);
    res.locals.model = target?.model ?? 'unknown';
    const decision = await authorizer.authorize(req, res, route, target?.model ?? input.model);
    if (!target) {
      authorizer.settle(decision.lease, requestId);
      throw new ApiError(404, `The model '${input.model}' does not exist.`, {
        code: 'model_not_found',
        param: 'model',
      });
    }

    const upstreamBody: Record<string, unknown> = { ...input.body, model: target.backend.model ?? target.model };
    if (input.stream) {
      // Always ask for usage so the request can be metered; the chunk is removed again below
      // unless the client asked for it too.
      upstreamBody.stream_options = { ...(input.body.stream_options as object | undefined), include_usage: true };
    }
    const body = Buffer.from(JSON.stringify(upstreamBody));

    const stopRenewing = authorizer.keepLeaseAlive(
      decision.lease,
      decision.leaseTtlSec ?? DEFAULT_LEASE_TTL_SEC,
      requestId,
    );
    metrics.inFlight.inc({ model: target.model });
    let outcome: ProxyOutcome;
    try {
      outcome = await proxyToBackend(
        { backend: target.backend, path: UPSTREAM_PATHS[route], body, requestId, stripUsage: !input.wantsUsage, res },
        timeouts,
      );
    } finally {
      stopRenewing();
      metrics.inFlight.dec({ model: target.model });
    }
    res.locals.status = outcome.status;

    const usage = outcome.usage ?? estimateUsage(body.length, outcome.contentEvents);
    authorizer.settle(decision.lease, requestId, usage.promptTokens, usage.completionTokens);
    if (outcome.failure) metrics.upstreamErrors.inc({ backend: target.backend.name, reason: outcome.failure });
    metrics.tokens.inc({ model: target.model, kind: 'prompt' }, usage.promptTokens);
    metrics.tokens.inc({ model: target.model, kind: 'completion' }, usage.completionTokens);
    if (input.stream && outcome.ttftMs !== null) metrics.ttft.observe({ model: target.model }, outcome.ttftMs / 1000);

    this.record({
      requestId,
      ts: new Date().toISOString(),
      keyId: decision.keyId,
      model: target.model,
      backend: target.backend.name,
      route,
      status: outcome.status,
      stream: input.stream,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens,
      ttftMs: outcome.ttftMs === null ? null : Math.round(outcome.ttftMs),
      durationMs: Math.round(performance.now() - started),
      errorCode: outcome.errorCode,
      usageSource: outcome.usage ? 'upstream' : 'estimated',
    });
  }

  /** The request has its answer already: a lost event is counted, never turned into an error. */
  private record(event: UsageEvent): void {
    this.deps.usageStream.append(event).catch((err: unknown) => {
      this.deps.metrics.usageEventsDropped.inc();
      this.deps.logger.warn({ err, requestId: event.requestId }, 'usage event dropped');
    });
  }
}

function estimateUsage(requestBytes: number, contentEvents: number): UpstreamUsage {
  return {
    promptTokens: Math.ceil(requestBytes / BYTES_PER_TOKEN_ESTIMATE),
    completionTokens: contentEvents,
    cachedTokens: 0,
  };
}
