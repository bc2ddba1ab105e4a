import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { z } from 'zod';

// BACKENDS_FILE: which models the gateway serves and where each one runs.
//
//   models:
//     tiny:
//       aliases: [tiny-chat]        # other names clients may use
//       tiers: [[local-a, local-b], [openrouter]]   # tried in order; least busy first within a tier
//   backends:
//     local-a:
//       kind: llamacpp              # llamacpp | openai
//       url: http://inference:8180
//       model: other-name           # optional: the model name the backend expects
//       apiKeyEnv: OPENROUTER_KEY   # optional: the backend's key is in this variable (or its _FILE form)
//       maxInFlight: 8              # optional: never send it more concurrent requests than this
//       utilizationUrl: https://api.chutes.ai/chutes/utilization   # optional: the provider's load
//
// New fields are added as optional keys so that older files keep loading.

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;

/** The kinds a backend may be; what the gateway does with each is its BACKEND_KINDS table. */
export const BACKEND_KIND_NAMES = ['llamacpp', 'openai'] as const;

const backendSchema = z
  .object({
    kind: z.enum(BACKEND_KIND_NAMES),
    url: z.string().url(),
    model: z.string().min(1).optional(),
    apiKeyEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    maxInFlight: z.number().int().positive().optional(),
    utilizationUrl: z.string().url().optional(),
  })
  .strict();

const modelSchema = z
  .object({
    aliases: z.array(z.string().regex(NAME, 'is not a valid model name')).default([]),
    tiers: z.array(z.array(z.string().min(1)).min(1, 'a tier names at least one backend')).min(1),
  })
  .strict();

const fileSchema = z.object({
  models: z.record(z.string().regex(NAME, 'is not a valid model name'), modelSchema),
  backends: z.record(z.string().min(1), backendSchema),
});

export type BackendKind = (typeof BACKEND_KIND_NAMES)[number];

export interface BackendConfig {
  name: string;
  kind: BackendKind;
  url: string;
  model?: string;
  apiKeyEnv?: string;
  maxInFlight?: number;
  utilizationUrl?: string;
}

export interface ModelConfig {
  name: string;
  aliases: string[];
  tiers: string[][];
}

export interface BackendsFile {
  models: ModelConfig[];
  backends: BackendConfig[];
}

export class BackendsFileError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid backends file: ${problems.join('; ')}`);
    this.name = 'BackendsFileError';
  }
}

/** "line N: a.b.c" for the deepest node of `path` present in the document. */
function located(doc: Document, lines: LineCounter, path: (string | number)[]): string {
  const field = path.join('.') || 'file';
  for (let depth = path.length; depth >= 0; depth -= 1) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return `line ${lines.linePos(node.range[0]).line}: ${field}`;
  }
  return field;
}

/** Parses and cross-checks the YAML text; every problem is named, with its line, in one BackendsFileError. */
export function parseBackendsFile(text: string): BackendsFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new BackendsFileError(doc.errors.map((e) => `not valid YAML (${e.message.split('\n')[0]})`));
  }
  const at = (path: (string | number)[]) => located(doc, lines, path);
  const parsed = fileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    throw new BackendsFileError(parsed.error.issues.map((i) => `${at(i.path)}: ${issueMessage(i)}`));
  }
  const backends = Object.entries(parsed.data.backends).map(([name, b]) => ({ name, ...b }));
  const models = Object.entries(parsed.data.models).map(([name, m]) => ({ name, ...m }));
  const problems: string[] = [];
  if (models.length === 0) problems.push(`${at(['models'])}: configure at least one model`);
  const backendNames = new Set(backends.map((b) => b.name));
  const seen = new Map<string, string>();
  for (const model of models) {
    model.aliases.forEach((name, i) => {
      if (name === model.name) problems.push(`${at(['models', model.name, 'aliases', i])}: "${name}" aliases itself`);
    });
    for (const name of new Set([model.name, ...model.aliases])) {
      const owner = seen.get(name);
      if (owner !== undefined) {
        problems.push(`${at(['models', model.name])}: name "${name}" is already used by ${owner}`);
      }
      seen.set(name, `models.${model.name}`);
    }
    model.tiers.forEach((tier, t) =>
      tier.forEach((backend, b) => {
        if (!backendNames.has(backend)) {
          problems.push(`${at(['models', model.name, 'tiers', t, b])}: unknown backend "${backend}"`);
        }
      }),
    );
    if (new Set(model.tiers.flat()).size !== model.tiers.flat().length) {
      problems.push(`${at(['models', model.name, 'tiers'])}: a backend is listed twice`);
    }
  }
  if (problems.length > 0) throw new BackendsFileError(problems);
  return { models, backends };
}

function issueMessage(issue: z.ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}
