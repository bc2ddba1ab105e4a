import { basename, dirname, resolve } from 'node:path';

// llama-server's router mode (--models-dir, --models-preset) reads every model's options from one
// ini file (llama.cpp common/preset.cpp): `[*]` holds the defaults of every model, `[name]` one
// model's own options, each key a llama-server long option without its dashes (`ctx-size`). A model
// in --models-dir is named after its file without `.gguf`; a section of that name adds options to
// it, a section of another name with `model = <path>` adds a model. The router's own command line is
// laid over every model's options, so nothing per-model may be on it: the args file holds only
// where the models and this file are.

/** An ini section's keys and values, in the order written. */
export type PresetOptions = Record<string, string>;

export interface PresetSection {
  name: string;
  options: PresetOptions;
}

/** A backends-file entry with `local:`, its ini keys already rendered by localModelPreset(). */
export interface LocalModelEntry {
  name: string;
  aliases: string[];
  /** Its model file (localModelPath of the entry). */
  path: string;
  options: PresetOptions;
}

export interface ModelsPresetInput {
  modelsDir: string;
  /** The planner's settings: every model's defaults. */
  defaults: PresetOptions;
  /** The default model (MODEL_PATH / MODEL_REPO+MODEL_FILE), when one is configured. */
  defaultModel: { path: string; options: PresetOptions } | null;
  /** Aliases the backends file gives `default`: the default model answers to them too. */
  defaultAliases: string[];
  localModels: LocalModelEntry[];
}

/** What callers ask the router for when they mean the default model. */
export const DEFAULT_MODEL_ALIAS = 'default';

/**
 * The router's name for a model file: its file name without `.gguf`. The router names a model in
 * MODELS_DIR after its file; one elsewhere gets the same name through its own section.
 */
export function routerModelName(path: string): string {
  return basename(path).replace(/\.gguf$/i, '');
}

/** Whether the router finds this file by scanning MODELS_DIR itself (a file at its top level). */
function scannedByRouter(path: string, modelsDir: string): boolean {
  return dirname(resolve(path)) === resolve(modelsDir);
}

/** Every section of the ini: defaults, the default model, then the backends file's local models. */
export function modelsPresetSections(input: ModelsPresetInput): PresetSection[] {
  const sections: PresetSection[] = [{ name: '*', options: input.defaults }];
  if (input.defaultModel) {
    const { path, options } = input.defaultModel;
    sections.push({
      name: routerModelName(path),
      options: {
        alias: [DEFAULT_MODEL_ALIAS, ...input.defaultAliases].join(','),
        ...(scannedByRouter(path, input.modelsDir) ? {} : { model: resolve(path) }),
        ...options,
      },
    });
  }
  for (const entry of input.localModels) {
    const { path } = entry;
    const named = routerModelName(path) === entry.name && scannedByRouter(path, input.modelsDir);
    sections.push({
      name: entry.name,
      options: {
        ...(entry.aliases.length > 0 ? { alias: entry.aliases.join(',') } : {}),
        // A file the router scans under its own name needs no path; any other name or place does.
        ...(named ? {} : { model: resolve(path) }),
        ...entry.options,
      },
    });
  }
  return sections;
}

// The router's ini grammar: a value ends at a newline or at the first `;` or `#` (a comment), and a
// section name at `]`. What it would cut short is refused here rather than misread there.
const SECTION_NAME = /^[^\]\r\n;#]+$/;
const KEY = /^[a-zA-Z_][a-zA-Z0-9_.-]*$/;
const VALUE = /^[^\r\n;#]*$/;

/**
 * The name the router gives a section: llama.cpp (common/preset.cpp, canonical_tag) rewrites what
 * follows the last `:` as a quantisation tag (`qwen:q4_k_m` -> `qwen:Q4_K_M`, `m:7b-q4` -> `m:Q4`).
 */
function routerSectionName(name: string): string {
  const colon = name.lastIndexOf(':');
  if (colon < 0 || name === '*') return name;
  const tag = name.slice(colon + 1);
  const suffix = /[-.]([A-Z0-9_]+)$/i.exec(tag);
  return `${name.slice(0, colon + 1)}${(suffix ? suffix[1]! : tag).toUpperCase()}`;
}

export class ModelsPresetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelsPresetError';
  }
}

/** The ini text; a name, key or value the router's parser would misread is an error naming it. */
export function renderModelsPreset(sections: PresetSection[]): string {
  const merged = new Map<string, PresetOptions>();
  for (const { name, options } of sections) {
    if (!SECTION_NAME.test(name) || name.trim() !== name) {
      throw new ModelsPresetError(`model name "${name}" cannot be a llama-server preset section`);
    }
    if (routerSectionName(name) !== name) {
      throw new ModelsPresetError(
        `model name "${name}": llama-server's router would call it "${routerSectionName(name)}" (it rewrites what follows ":"); rename it`,
      );
    }
    // The same model named twice (the default model also listed with local:): one section, both
    // option sets, and every alias of both.
    const before = merged.get(name) ?? {};
    const aliases = [before.alias, options.alias].filter(Boolean).join(',');
    merged.set(name, { ...before, ...options, ...(aliases ? { alias: aliases } : {}) });
  }
  const lines = ['; Written by the orchestrator on every start (prepare / supervise): edits are replaced.', ''];
  for (const [name, options] of merged) {
    lines.push(`[${name}]`);
    for (const [key, value] of Object.entries(options)) {
      if (!KEY.test(key)) throw new ModelsPresetError(`[${name}]: "${key}" is not a llama-server option name`);
      if (!VALUE.test(value) || value.trim() !== value) {
        throw new ModelsPresetError(
          `[${name}] ${key}: the value "${value}" cannot be written to the preset file (no ;, # or line break, no leading or trailing space)`,
        );
      }
      lines.push(`${key} = ${value}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** llama-server in router mode: every GGUF in the folder, options from the preset, loads only when asked. */
export function routerArgs(modelsDir: string, presetFile: string): string[] {
  // Autoload off and no limit of its own: the gateway alone decides what is loaded and when.
  return ['--models-dir', modelsDir, '--models-preset', presetFile, '--no-models-autoload', '--models-max', '0'];
}
