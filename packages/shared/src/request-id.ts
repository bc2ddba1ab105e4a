import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { requestContext } from './request-context.js';

const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Takes the caller's x-request-id when it is sane (else makes one), echoes it on the response and
 * runs the rest of the request inside its context, so every log line carries it.
 */
export const requestIdMiddleware: RequestHandler = (req, res, next) => {
  const given = req.get('x-request-id');
  const requestId = given && VALID_REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader('x-request-id', requestId);
  res.locals.requestId = requestId;
  requestContext.run({ requestId }, next);
};
