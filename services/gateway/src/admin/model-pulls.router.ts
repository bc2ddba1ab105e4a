import express, { Router, type Request, type Response } from 'express';
import { ApiError, FINISHED_PULL_STATES as FINISHED } from '@gguf-gateway/shared';
import type { ModelPullsService } from './model-pulls.service.js';

export interface ModelPullsRouterDeps {
  pulls: ModelPullsService;
  /** How often the SSE stream looks at the job (a few times per second). */
  eventsPollMs?: number;
  /** Comment line that keeps idle proxies from closing a quiet SSE stream. */
  keepAliveMs?: number;
}

/** SSE: one `progress` event per change, then `completed`, `failed` or `cancelled`, then the end. */
async function streamJob(pulls: ModelPullsService, req: Request, res: Response, pollMs: number, keepAliveMs: number) {
  let view = await pulls.job(req.params.id as string);
  let last = JSON.stringify(view);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  let closed = false;
  req.on('close', () => (closed = true));
  send(FINISHED.includes(view.state) ? view.state : 'progress', view);
  let quietSince = Date.now();
  while (!closed && !FINISHED.includes(view.state)) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    try {
      view = await pulls.job(req.params.id as string);
    } catch (err) {
      // A lost job ends the stream; a Redis hiccup does not, the next poll may succeed.
      if (err instanceof ApiError && err.status === 404) {
        send('error', err.toBody());
        break;
      }
      continue;
    }
    const now = JSON.stringify(view);
    if (now !== last || FINISHED.includes(view.state)) {
      send(FINISHED.includes(view.state) ? view.state : 'progress', view);
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= keepAliveMs) {
      res.write(': keep-alive\n\n');
      quietSince = Date.now();
    }
  }
  res.end();
}

/** Admin routes for model pulls, relative to /admin/v1 (mounted behind the admin-key check). */
export function createModelPullsRouter({
  pulls,
  eventsPollMs = 250,
  keepAliveMs = 15_000,
}: ModelPullsRouterDeps): Router {
  const router = Router();
  router.post('/models/pull', express.json({ limit: '16kb' }), async (req, res) => {
    const { view, deduplicated } = await pulls.enqueue(req.body);
    res.status(202).json({ jobId: view.id, state: view.state, deduplicated });
  });
  router.get('/jobs/:id', async (req, res) => {
    res.json(await pulls.job(req.params.id));
  });
  router.get('/jobs/:id/events', async (req, res) => {
    await streamJob(pulls, req, res, eventsPollMs, keepAliveMs);
  });
  router.delete('/jobs/:id', async (req, res) => {
    res.status(202).json(await pulls.cancel(req.params.id));
  });
  router.get('/models', async (_req, res) => {
    res.json({ object: 'list', data: await pulls.listModels() });
  });
  return router;
}
