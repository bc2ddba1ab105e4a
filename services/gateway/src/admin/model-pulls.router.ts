import express, { Router, type Request, type Response } from 'express';
import type { ModelPullsService } from './model-pulls.service.js';

export interface ModelPullsRouterDeps {
  pulls: ModelPullsService;
  /** How often the SSE stream looks at the job (a few times per second). */
  eventsPollMs?: number;
  /** Comment line that keeps idle proxies from closing a quiet SSE stream. */
  keepAliveMs?: number;
}

/** Opens the SSE response and hands the service a sink that writes to it. */
async function streamJob(pulls: ModelPullsService, req: Request, res: Response, pollMs: number, keepAliveMs: number) {
  let closed = false;
  req.on('close', () => (closed = true));
  await pulls.streamJob(
    req.params.id as string,
    {
      open: () =>
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        }),
      send: (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
      keepAlive: () => res.write(': keep-alive\n\n'),
      closed: () => closed,
    },
    pollMs,
    keepAliveMs,
  );
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
