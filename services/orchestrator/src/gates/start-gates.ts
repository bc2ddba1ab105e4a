import { readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { migrateUp } from '@gguf-gateway/db';
import {
  detectGpus,
  localModelPath,
  localModelPreset,
  memoryBudgetOf,
  parseBackendsFile,
  PullQueue,
  unreadableReason,
  type BackendsFile,
  type GpuDetection,
  type Logger,
} from '@gguf-gateway/shared';
import { ensureDefaultModel, type DefaultModel, type DefaultModelSettings } from '../default-model.service.js';
import { pingPostgres, pingRedis } from '../dependency.probes.js';

import { planLlamaArgs, presetDefaults, type LlamaOverrides, type ModelFacts } from '../gpu/llama-args.planner.js';
import { writeLlamaArgs, writeMemoryBudget, writeModelsPreset } from '../router/inference-files.repository.js';
import {
  modelsPresetSections,
  renderModelsPreset,
  routerArgs,
  routerModelName,
  type LocalModelEntry,
} from '../router/models-preset.js';
import { describeProblems, type FileValidator } from './file-validators.js';
import type { Gate } from './gate-runner.js';

export interface StartSettings extends DefaultModelSettings {
  databaseUrl: string;
  redisUrl: string;
  redisKeyPrefix: string;
  keysFile: string;
  backendsFile: string;
  nvidiaSmi: string;
  llamaArgsFile: string;
  /** MODEL_ALIASES: more names of the default model. */
  defaultModelAliases: string[];
  modelsPresetFile: string;
  memoryBudgetFile: string;
  overrides: LlamaOverrides;
  gateTimeoutMs: number;
  modelPullTimeoutMs: number;
}

export interface StartGateDeps {
  logger: Logger;
  validateKeysFile: FileValidator;
  validateBackendsFile: FileValidator;
  cpuCount?: number;
  /** The memory budget without a GPU; the machine's RAM unless a test says otherwise. */
  ramBytes?: number;
  /** supervise starts llama-server with the default model: there, no model is a failed start. */
  modelRequired?: boolean;
}

/** What the gates found, for the supervisor that starts llama-server afterwards. */
export interface PreparedStart {
  model: DefaultModel | null;
  gpus: GpuDetection | null;
  llamaArgs: string[] | null;
  /** The router's name of the default model: the gateway keeps it loaded (MODELS_PINNED). */
  defaultModelName: string | null;
}

/** The gates that need the services started by `supervise` before them (the worker pulls the model). */
export const DEPENDENCY_GATES = ['postgres', 'redis', 'migrations', 'keys-file', 'backends-file'] as const;
export const MODEL_GATES = ['model', 'gpu', 'llama-args'] as const;

/** The backends file's entries that name a local model, with their preset keys. */
function localModels(file: BackendsFile, modelsDir: string): LocalModelEntry[] {
  return file.localModels.map((entry) => ({
    name: entry.name,
    aliases: entry.aliases,
    path: localModelPath(entry, modelsDir),
    options: localModelPreset(entry),
  }));
}

/** MODEL_ALIASES and the names the backends file gives `default`: the default model answers to them too. */
function defaultAliases(configured: string[], file: BackendsFile): string[] {
  const fromFile = [...file.models, ...file.localModels].find((m) => m.name === 'default')?.aliases ?? [];
  return [...new Set([...configured, ...fromFile])];
}

async function checkFile(path: string, variable: string, validate: FileValidator): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const error = new Error(`${variable}=${path} cannot be read (${unreadableReason(path, err)})`, { cause: err });
    // A missing file keeps the gate's own fix (point the variable at the file); a file this user may
    // not read needs its owner or mode changed instead.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw error;
    throw Object.assign(error, { fix: `Make ${variable} readable by this service's user.` });
  }
  const report = validate(text);
  if (report.problems.length > 0) throw new Error(`${variable}=${path}: ${describeProblems(report.problems)}`);
  return `${report.entries} entries`;
}

function modelFacts({ path, info, bytes }: DefaultModel): ModelFacts {
  const count = (key: string) => {
    const value = info.metadata[`${info.architecture}.attention.${key}`];
    return typeof value === 'number' ? value : null;
  };
  return {
    path,
    fileBytes: bytes,
    blockCount: info.blockCount,
    contextLength: info.contextLength,
    embeddingLength: info.embeddingLength,
    headCount: count('head_count'),
    headCountKv: count('head_count_kv'),
  };
}

/** Every start gate, in order. Each passes, or fails saying what to fix. */
export function startGates(s: StartSettings, deps: StartGateDeps, prepared: PreparedStart): Gate[] {
  const { logger } = deps;
  const wait = s.gateTimeoutMs;
  return [
    {
      name: 'postgres',
      waitsFor: 'Postgres to accept connections',
      fix: 'Check DATABASE_URL and that Postgres is running and reachable from here.',
      timeoutMs: wait,
      retry: true,
      check: () => pingPostgres(s.databaseUrl),
    },
    {
      name: 'redis',
      waitsFor: 'Redis to answer PING',
      fix: 'Check REDIS_URL and that Redis is running and reachable from here.',
      timeoutMs: wait,
      retry: true,
      check: () => pingRedis(s.redisUrl),
    },
    {
      name: 'migrations',
      waitsFor: 'database migrations to apply',
      fix: 'The database user needs rights to create tables; the error above names the failing statement.',
      timeoutMs: wait,
      retry: false,
      check: async () => {
        const applied = await migrateUp(s.databaseUrl, logger);
        return { detail: applied.length > 0 ? `applied ${applied.join(', ')}` : 'schema current' };
      },
    },
    {
      name: 'keys-file',
      waitsFor: 'the API keys file to validate',
      fix: 'Fix API_KEYS_FILE: one key per line, key_id:secret[:rpm[:expires]] [option=value ...] (see README).',
      timeoutMs: wait,
      retry: false,
      check: async () => ({ detail: await checkFile(s.keysFile, 'API_KEYS_FILE', deps.validateKeysFile) }),
    },
    {
      name: 'backends-file',
      waitsFor: 'the backends file to validate',
      fix: 'Fix BACKENDS_FILE: a YAML mapping of models to backends (see README).',
      timeoutMs: wait,
      retry: false,
      check: async () => ({ detail: await checkFile(s.backendsFile, 'BACKENDS_FILE', deps.validateBackendsFile) }),
    },
    {
      name: 'model',
      waitsFor: 'the default model to be on disk',
      fix: 'Set MODEL_PATH to a GGUF file, or MODEL_REPO + MODEL_FILE to a file the worker can pull (PULL_ALLOWED_HOSTS, HF_TOKEN).',
      timeoutMs: s.modelPullTimeoutMs,
      retry: false,
      check: async (signal) => {
        prepared.model = await ensureDefaultModel(s, {
          logger,
          signal,
          openPulls: () =>
            PullQueue.connect(s.redisUrl, s.redisKeyPrefix, (err) => logger.warn({ err }, 'pull queue error')),
        });
        if (!prepared.model && deps.modelRequired) {
          throw new Error('no default model configured: set MODEL_REPO+MODEL_FILE or MODEL_PATH');
        }
        if (!prepared.model) return { skipped: true, detail: 'no default model configured (MODEL_PATH or MODEL_REPO)' };
        const { info, path, bytes } = prepared.model;
        return { detail: `${path} (${info.architecture ?? 'unknown'}, ${info.quantization}, ${bytes} bytes)` };
      },
    },
    {
      name: 'gpu',
      waitsFor: 'GPU detection (nvidia-smi)',
      fix: 'Check NVIDIA_SMI and the container GPU runtime.',
      timeoutMs: wait,
      retry: false,
      check: async () => {
        prepared.gpus = await detectGpus(s.nvidiaSmi);
        const { gpus, reason } = prepared.gpus;
        if (reason) logger.warn({ reason }, 'no GPU: llama-server runs on the CPU');
        return { detail: gpus.length ? gpus.map((g) => `${g.name} ${g.memoryTotalMiB} MiB`).join(', ') : reason! };
      },
    },
    {
      name: 'llama-args',
      waitsFor: 'the llama-server router arguments, models preset and memory budget to be written',
      fix: 'DATA_DIR (or LLAMA_ARGS_FILE) must be writable; a model name or option the preset file cannot hold is named above.',
      timeoutMs: wait,
      retry: false,
      check: async () => {
        const { model, gpus } = prepared;
        if (!model) return { skipped: true, detail: 'no default model: llama-server is not configured here' };
        const plan = planLlamaArgs(modelFacts(model), gpus?.gpus ?? [], deps.cpuCount ?? cpus().length, s.overrides);
        // Validated by the backends-file gate before this one.
        const backends = parseBackendsFile(await readFile(s.backendsFile, 'utf8'));
        const sections = modelsPresetSections({
          modelsDir: s.modelsDir,
          defaults: presetDefaults(plan),
          defaultModel: { path: model.path, options: {} },
          defaultAliases: defaultAliases(s.defaultModelAliases, backends),
          localModels: localModels(backends, s.modelsDir),
        });
        // The preset first: the arguments name it, and the inference container starts on the arguments.
        await writeModelsPreset(s.modelsPresetFile, renderModelsPreset(sections));
        await writeMemoryBudget(
          s.memoryBudgetFile,
          memoryBudgetOf(gpus ?? { gpus: [], reason: null }, deps.ramBytes ?? totalmem()),
        );
        prepared.llamaArgs = routerArgs(s.modelsDir, s.modelsPresetFile);
        prepared.defaultModelName = routerModelName(model.path);
        await writeLlamaArgs(s.llamaArgsFile, prepared.llamaArgs);
        logger.info(
          {
            args: prepared.llamaArgs,
            file: s.llamaArgsFile,
            preset: s.modelsPresetFile,
            defaults: sections[0]!.options,
          },
          plan.reason,
        );
        return {
          detail: `${s.llamaArgsFile}: ${prepared.llamaArgs.join(' ')}; default model ${prepared.defaultModelName} (alias default)`,
        };
      },
    },
  ];
}
