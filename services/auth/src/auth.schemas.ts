import {
  API_ROUTES,
  badRequest,
  z,
  type AuthorizeRequest,
  type AuthorizedRoute,
  type IdentifyRequest,
  type SettleRequest,
} from '@gguf-gateway/shared';

// The bodies of auth's internal API (DESIGN.md, the auth <-> gateway contract), checked at the door.

const ROUTES = [...API_ROUTES, 'models', 'admin'] as const satisfies readonly AuthorizedRoute[];

const tokens = z.number({ message: 'must be a whole number of tokens' }).int().nonnegative().safe();
const lease = z.string({ message: 'must be a string' }).min(1, 'must not be empty');

export const authorizeRequestSchema = z.object({
  key: z.string({ message: 'must be a string' }),
  model: z.string({ message: 'must be a string or null' }).nullable().default(null),
  route: z.enum(ROUTES, { message: `must be one of ${ROUTES.join(', ')}` }),
  ip: z.string({ message: 'must be a string' }),
}) satisfies z.ZodType<AuthorizeRequest, z.ZodTypeDef, unknown>;

export const identifyRequestSchema = z.object({
  key: z.string({ message: 'must be a string' }),
  ip: z.string({ message: 'must be a string' }),
}) satisfies z.ZodType<IdentifyRequest, z.ZodTypeDef, unknown>;

export const settleRequestSchema = z.object({
  lease,
  promptTokens: tokens,
  completionTokens: tokens,
}) satisfies z.ZodType<SettleRequest, z.ZodTypeDef, unknown>;

export const renewRequestSchema = z.object({ lease });

/** The body as `schema` describes it, or a 400 whose `param` is the first bad field's path. */
export function parseBody<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const [issue] = parsed.error.issues;
  const param = issue && issue.path.length > 0 ? issue.path.join('.') : null;
  const message = issue ? `${param ? `'${param}' ` : ''}${issue.message}.` : 'The request body is invalid.';
  throw badRequest(message, param);
}
