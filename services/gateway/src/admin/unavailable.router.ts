import { Router } from 'express';
import { serviceUnavailable } from '@gguf-gateway/shared';

/** Answers an admin route whose dependency is not configured with a 503 that says what to set. */
export function unavailableRouter(paths: string[], reason: string): Router {
  const router = Router();
  router.all(paths, () => {
    throw serviceUnavailable(reason, 60, 'not_configured');
  });
  return router;
}
