import express, { type Request, type RequestHandler } from 'express';
import { badRequest } from '@gguf-gateway/shared';

const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const COLON = 0x3a; // :
const BOM_FIRST_BYTE = 0xef;

/** What one pass over a JSON text found before it is parsed. */
export interface JsonScan {
  /** Nests arrays and objects deeper than the limit. */
  tooDeep: boolean;
  /** Members of the top-level object, duplicates counted (colons outside strings at depth 1). */
  topLevelMembers: number;
}

/**
 * One pass over the bytes, strings skipped: it runs before JSON.parse, which takes seconds on a few
 * megabytes of nested brackets.
 */
export function scanJson(body: Buffer, maxDepth: number): JsonScan {
  let depth = 0;
  let inString = false;
  let topLevelMembers = 0;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > maxDepth) return { tooDeep: true, topLevelMembers };
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--;
    } else if (byte === COLON && depth === 1) {
      topLevelMembers++;
    }
  }
  return { tooDeep: false, topLevelMembers };
}

/** Whether `body` (JSON text) nests arrays and objects deeper than `maxDepth`. */
export function jsonDeeperThan(body: Buffer, maxDepth: number): boolean {
  return scanJson(body, maxDepth).tooDeep;
}

/** A parsed body's bytes as the client sent them, when they may be forwarded instead of re-serialized. */
export interface RawJson {
  bytes: Buffer;
  /** Members of the top-level object: as many as the parsed object has keys unless a key repeats. */
  topLevelMembers: number;
}

const rawBodies = new WeakMap<Request, RawJson>();

/**
 * The request's JSON body as sent: UTF-8 without a byte-order mark, so that the bytes say exactly
 * what the parsed body says (given no repeated key, which the caller checks). Undefined otherwise.
 */
export function rawJsonOf(req: Request): RawJson | undefined {
  return rawBodies.get(req);
}

/** express.json with a size limit (413) and a nesting limit (400) checked before the parse. */
export function jsonBody(limitBytes: number, maxDepth: number): RequestHandler {
  return express.json({
    limit: limitBytes,
    verify: (req, _res, body, encoding) => {
      const scan = scanJson(body, maxDepth);
      if (scan.tooDeep) {
        throw badRequest(`Request body nests arrays or objects deeper than ${maxDepth} levels.`, null, 'json_too_deep');
      }
      if (/^utf-?8$/i.test(encoding) && body[0] !== BOM_FIRST_BYTE) {
        rawBodies.set(req as Request, { bytes: body, topLevelMembers: scan.topLevelMembers });
      }
    },
  });
}
