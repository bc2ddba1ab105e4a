import express, { type RequestHandler } from 'express';
import { badRequest } from '@gguf-gateway/shared';

const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether `body` (JSON text) nests arrays and objects deeper than `maxDepth`. One pass over the
 * bytes, strings skipped: it runs before JSON.parse, which takes seconds on a few megabytes of
 * nested brackets.
 */
export function jsonDeeperThan(body: Buffer, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/** express.json with a size limit (413) and a nesting limit (400) checked before the parse. */
export function jsonBody(limitBytes: number, maxDepth: number): RequestHandler {
  return express.json({
    limit: limitBytes,
    verify: (_req, _res, body) => {
      if (jsonDeeperThan(body, maxDepth)) {
        throw badRequest(`Request body nests arrays or objects deeper than ${maxDepth} levels.`, null, 'json_too_deep');
      }
    },
  });
}
