// The x-ratelimit-* headers are written by auth and, for requests served from a grant, by the
// gateway: one definition in packages/shared.
export { formatResetDuration, rateLimitHeaders, retryAfterSeconds, type WindowFigures } from '@gguf-gateway/shared';
