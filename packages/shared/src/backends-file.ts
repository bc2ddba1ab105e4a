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
// A model entry may instead name a model file that llama-server's router serves (models on demand):
//
//   models:
//     chat:
//       aliases: [default]
//       local: qwen2.5-7b-instruct-q4_k_m   # a file in MODELS_DIR without .gguf, or an absolute path to a .gguf
//       llama: { ctxSize: 8192, parallel: 2, gpuLayers: 99, chatTemplate: chatml, mode: chat, args: [--flash-attn, on] }
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

const llamaOptionsSchema = z
  .object({
    ctxSize: z.number().int().nonnegative().optional(),
    parallel: z.number().int().positive().optional(),
    gpuLayers: z.number().int().nonnegative().optional(),
    chatTemplate: z.string().min(1).optional(),
    mode: z.enum(['chat', 'embeddings', 'rerank']).optional(),
    args: z.array(z.string().min(1)).optional(),
  })
  .strict();

const LOCAL_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const modelSchema = z
  .object({
    aliases: z.array(z.string().regex(NAME, 'is not a valid model name')).default([]),
    tiers: z
      .array(z.array(z.string().min(1)).min(1, 'a tier names at least one backend'))
      .min(1)
      .optional(),
    local: z
      .string()
      .refine(
        (v) => LOCAL_FILE.test(v) || (v.startsWith('/') && v.endsWith('.gguf') && !v.split('/').includes('..')),
        'must be a model file name in MODELS_DIR (without .gguf) or an absolute path to a .gguf file',
      )
      .optional(),
    llama: llamaOptionsSchema.optional(),
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

/** llama-server options of one local model; the orchestrator's defaults apply to what is left out. */
export type LlamaModelOptions = z.infer<typeof llamaOptionsSchema>;

/** A model entry served from a model file by llama-server's router (`local:` instead of `tiers`). */
export interface LocalModelConfig {
  name: string;
  aliases: string[];
  /** A file name in MODELS_DIR without `.gguf`, or an absolute path to a `.gguf` file. */
  local: string;
  llama: LlamaModelOptions;
}

export interface BackendsFile {
  /** Entries with `tiers`: routed to the named backends. */
  models: ModelConfig[];
  /** Entries with `local`: served on demand by llama-server's router. */
  localModels: LocalModelConfig[];
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
  const entries = Object.entries(parsed.data.models).map(([name, m]) => ({ name, ...m }));
  const problems: string[] = [];
  // No entries is valid: with models on demand every model may come from MODELS_DIR (the gateway
  // refuses to start with neither).
  const models: ModelConfig[] = [];
  const localModels: LocalModelConfig[] = [];
  for (const { name, aliases, tiers, local, llama } of entries) {
    if (tiers && local === undefined && llama === undefined) models.push({ name, aliases, tiers });
    else if (local !== undefined && !tiers) localModels.push({ name, aliases, local, llama: llama ?? {} });
    else if (tiers)
      problems.push(`${at(['models', name])}: give either tiers (backends) or local (a model file), not both`);
    else if (llama)
      problems.push(`${at(['models', name, 'llama'])}: llama options need local (the model file they apply to)`);
    else problems.push(`${at(['models', name])}: give tiers (backends to route to) or local (a model file)`);
  }
  const backendNames = new Set(backends.map((b) => b.name));
  const seen = new Map<string, string>();
  for (const model of [...models, ...localModels]) {
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
    if (!('tiers' in model)) {
      const { stray } = argsPreset(model.llama.args ?? []);
      if (stray.length > 0) {
        problems.push(
          `${at(['models', model.name, 'llama', 'args'])}: "${stray[0]}" follows no --flag (write args as [--flag, value, --other-flag])`,
        );
      }
      continue;
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
  return { models, localModels, backends };
}

/** Where a local entry's model file is: an absolute path as given, else `<modelsDir>/<local>.gguf`. */
export function localModelPath(entry: Pick<LocalModelConfig, 'local'>, modelsDir: string): string {
  return entry.local.startsWith('/') ? entry.local : `${modelsDir.replace(/\/+$/, '')}/${entry.local}.gguf`;
}

/**
 * The llama-server preset (ini) keys and values of one local entry's options, in the order given:
 * what the orchestrator writes into the entry's `[name]` section and the gateway plans memory with.
 * `args` are command-line flags: `--flag value` becomes `flag = value`, a lone `--flag` `flag = true`.
 */
export function localModelPreset(entry: Pick<LocalModelConfig, 'llama'>): Record<string, string> {
  const { ctxSize, parallel, gpuLayers, chatTemplate, mode, args = [] } = entry.llama;
  const preset: Record<string, string> = {};
  if (ctxSize !== undefined) preset['ctx-size'] = String(ctxSize);
  if (parallel !== undefined) preset.parallel = String(parallel);
  if (gpuLayers !== undefined) preset['n-gpu-layers'] = String(gpuLayers);
  if (chatTemplate !== undefined) preset['chat-template'] = chatTemplate;
  if (mode === 'embeddings') preset.embedding = 'true';
  if (mode === 'rerank') preset.reranking = 'true';
  return { ...preset, ...argsPreset(args).preset };
}

/** `--flag value` as `flag = value`, a lone `--flag` as `flag = true`; `stray`: words that follow no flag. */
function argsPreset(args: readonly string[]): { preset: Record<string, string>; stray: string[] } {
  const preset: Record<string, string> = {};
  const stray: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const word = args[i]!;
    if (!word.startsWith('-') || /^-\d/.test(word)) {
      stray.push(word);
      continue;
    }
    const next = args[i + 1];
    // A value follows unless the next word is another flag (a negative number is a value).
    const hasValue = next !== undefined && (!next.startsWith('-') || /^-\d/.test(next));
    preset[word.replace(/^-+/, '')] = hasValue ? next : 'true';
    if (hasValue) i += 1;
  }
  return { preset, stray };
}

function issueMessage(issue: z.ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}
