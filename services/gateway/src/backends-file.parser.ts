import { parse as parseYaml } from 'yaml';
import { z } from '@gguf-gateway/shared';

// BACKENDS_FILE: which models the gateway serves and where each one runs.
//
//   models:
//     tiny:
//       aliases: [tiny-chat]        # other names clients may use
//       tiers: [[local-a]]          # ordered tiers of backend names (primary, fallback, ...)
//   backends:
//     local-a:
//       kind: llamacpp              # llamacpp | openai
//       url: http://inference:8180
//       model: other-name           # optional: the model name the backend expects
//       apiKeyEnv: OPENROUTER_KEY   # optional: the backend's key is in this variable (kind openai)
//
// New fields are added as optional keys so that older files keep loading.

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;

const backendSchema = z.object({
  kind: z.enum(['llamacpp', 'openai']),
  url: z.string().url(),
  model: z.string().min(1).optional(),
  apiKeyEnv: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name')
    .optional(),
});

const modelSchema = z.object({
  aliases: z.array(z.string().regex(NAME, 'is not a valid model name')).default([]),
  tiers: z.array(z.array(z.string().min(1)).min(1, 'a tier names at least one backend')).min(1),
});

const fileSchema = z.object({
  models: z.record(z.string().regex(NAME, 'is not a valid model name'), modelSchema),
  backends: z.record(z.string().min(1), backendSchema),
});

export type BackendKind = 'llamacpp' | 'openai';

export interface BackendConfig {
  name: string;
  kind: BackendKind;
  url: string;
  model?: string;
  apiKeyEnv?: string;
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

/** Parses and cross-checks the YAML text; every problem is named in one BackendsFileError. */
export function parseBackendsFile(text: string): BackendsFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new BackendsFileError([`not valid YAML (${(err as Error).message.split('\n')[0]})`]);
  }
  const parsed = fileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new BackendsFileError(parsed.error.issues.map((i) => `${i.path.join('.') || 'file'}: ${i.message}`));
  }
  const backends = Object.entries(parsed.data.backends).map(([name, b]) => ({ name, ...b }));
  const models = Object.entries(parsed.data.models).map(([name, m]) => ({ name, ...m }));
  const problems: string[] = [];
  if (models.length === 0) problems.push('models: configure at least one model');
  const backendNames = new Set(backends.map((b) => b.name));
  const seen = new Map<string, string>();
  for (const model of models) {
    for (const name of [model.name, ...model.aliases]) {
      const owner = seen.get(name);
      if (owner !== undefined) problems.push(`models.${model.name}: name "${name}" is already used by ${owner}`);
      seen.set(name, `models.${model.name}`);
    }
    for (const backend of model.tiers.flat()) {
      if (!backendNames.has(backend)) problems.push(`models.${model.name}.tiers: unknown backend "${backend}"`);
    }
  }
  if (problems.length > 0) throw new BackendsFileError(problems);
  return { models, backends };
}
