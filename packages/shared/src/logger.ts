import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { currentRequestId } from './request-context.js';

export type { Logger };

// Paths whose values are secrets wherever they appear in a log object.
const REDACTED_PATHS = [
  'authorization',
  'apiKey',
  'key',
  'secret',
  'token',
  'password',
  'hfToken',
  '*.authorization',
  '*.apiKey',
  '*.key',
  '*.secret',
  '*.token',
  '*.password',
  '*.hfToken',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

// Strings that look like credentials are masked even inside free text (error messages, URLs).
const SECRET_PATTERNS: RegExp[] = [
  /(Bearer\s+)[^\s"',]+/gi,
  /\b(hf_)[A-Za-z0-9]{8,}/g,
  /\b(sk-)[A-Za-z0-9_-]{8,}/g,
  /([?&](?:token|key|api_key|access_token)=)[^&\s"']+/gi,
  // Presigned URLs (S3, GCS, CloudFront, Azure SAS): the signature and credential in the query string.
  /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential|Signature|Policy|Key-Pair-Id|sig)=)[^&\s"']+/gi,
];

export function maskSecrets(text: string): string {
  return SECRET_PATTERNS.reduce((out, pattern) => out.replace(pattern, '$1[REDACTED]'), text);
}

export interface LoggerSettings {
  service: string;
  level?: string;
  /** Where lines go; tests pass a capture stream. Defaults to stdout. */
  destination?: DestinationStream;
}

export function createLogger({ service, level = 'info', destination }: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
    mixin: () => {
      const requestId = currentRequestId();
      return requestId ? { requestId } : {};
    },
    formatters: { level: (label) => ({ level: label }) },
    hooks: {
      // Messages are free text: mask anything in them that looks like a credential.
      logMethod(args, method) {
        const masked = args.map((arg) => (typeof arg === 'string' ? maskSecrets(arg) : arg));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
    serializers: {
      err: (err: unknown) => {
        // Callers sometimes pass a reason string or a rejection value: log it, never throw on it.
        if (typeof err !== 'object' || err === null) return maskSecrets(String(err));
        const serialized = stdSerializers.err(err as Error);
        serialized.message = maskSecrets(serialized.message ?? '');
        if (serialized.stack) serialized.stack = maskSecrets(serialized.stack);
        return serialized;
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
