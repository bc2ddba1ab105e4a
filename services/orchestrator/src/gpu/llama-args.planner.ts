import type { Gpu } from '@gguf-gateway/shared';

export interface ModelFacts {
  path: string;
  fileBytes: number;
  blockCount: number | null;
  contextLength: number | null;
  embeddingLength: number | null;
  /** Attention heads and KV heads: grouped-query attention shrinks the KV cache by their ratio. */
  headCount: number | null;
  headCountKv: number | null;
}

export interface LlamaOverrides {
  nGpuLayers?: number | undefined;
  ctxSize?: number | undefined;
  parallel?: number | undefined;
  threads?: number | undefined;
}

export interface LlamaPlan {
  nGpuLayers: number;
  ctxSize: number;
  parallel: number;
  threads: number;
  /** Share of layers per GPU (free VRAM), only with more than one GPU. */
  tensorSplit: number[] | null;
  /** Every layer of the model is on the GPU and the user set no count of their own. */
  allLayersOffloaded: boolean;
  /** One line a user can read in the log: why these numbers. */
  reason: string;
}

const MiB = 1024 * 1024;
/** Per GPU: CUDA context, compute buffers and other processes' headroom. */
const RESERVED_PER_GPU_MiB = 1024;
/** Longest context a slot gets unless the user asks for more: KV memory grows with it. */
const MAX_SLOT_CONTEXT = { gpu: 8192, cpu: 4096 };
const DEFAULT_PARALLEL = { gpu: 4, cpu: 2 };

/** KV cache bytes per token of context: K and V, f16, every layer, shrunk by grouped-query attention. */
function kvBytesPerToken(model: ModelFacts): number {
  const gqa = model.headCount && model.headCountKv ? model.headCountKv / model.headCount : 1;
  return 2 * 2 * (model.blockCount ?? 32) * (model.embeddingLength ?? 4096) * gqa;
}

/**
 * Picks llama-server settings from the GPUs and the model: offload as many layers as fit in free
 * VRAM next to the KV cache, a context per slot bounded by the training context, threads for
 * what stays on the CPU. Every user override wins.
 */
export function planLlamaArgs(model: ModelFacts, gpus: Gpu[], cpus: number, overrides: LlamaOverrides = {}): LlamaPlan {
  const kind = gpus.length > 0 ? 'gpu' : 'cpu';
  const parallel = overrides.parallel ?? DEFAULT_PARALLEL[kind];
  const slotContext = Math.min(model.contextLength ?? 4096, MAX_SLOT_CONTEXT[kind]);
  const ctxSize = overrides.ctxSize ?? slotContext * parallel;
  // llama.cpp counts the output layer as one more offloadable layer.
  const layers = (model.blockCount ?? 0) + 1;
  const kvBytes = ctxSize * kvBytesPerToken(model);

  let nGpuLayers = 0;
  let reason = 'no GPU: CPU only';
  let tensorSplit: number[] | null = null;
  if (kind === 'gpu') {
    const freeMiB = gpus.map((g) => Math.max(0, g.memoryTotalMiB - g.memoryUsedMiB - RESERVED_PER_GPU_MiB));
    const budget = freeMiB.reduce((a, b) => a + b, 0) * MiB;
    const perLayer = (model.fileBytes + kvBytes) / layers;
    nGpuLayers = Math.max(0, Math.min(layers, Math.floor(budget / perLayer)));
    if (gpus.length > 1) tensorSplit = freeMiB;
    const need = Math.ceil((model.fileBytes + kvBytes) / MiB);
    reason =
      `${gpus.length} GPU(s), ${Math.floor(budget / MiB)} MiB usable VRAM; ` +
      `model + KV cache need ~${need} MiB: ${nGpuLayers}/${layers} layers offloaded`;
  }
  const allOnGpu = kind === 'gpu' && nGpuLayers >= layers;
  // Fully offloaded generation barely uses the CPU; otherwise leave one core to the rest of the stack.
  const threads = overrides.threads ?? (allOnGpu ? Math.min(cpus, 4) : Math.max(1, cpus - 1));
  if (overrides.nGpuLayers !== undefined) {
    nGpuLayers = overrides.nGpuLayers;
    reason += '; n-gpu-layers set by LLAMA_N_GPU_LAYERS';
  }
  const allLayersOffloaded = allOnGpu && overrides.nGpuLayers === undefined;
  return { nGpuLayers, ctxSize, parallel, threads, tensorSplit, allLayersOffloaded, reason };
}

/**
 * The planner's settings as the router's `[*]` preset keys: every model's defaults. When the
 * default model fits in VRAM entirely, every model gets all of its layers offloaded (the gateway
 * loads only what fits); otherwise the planned count, and LLAMA_N_GPU_LAYERS always wins.
 */
export function presetDefaults(plan: LlamaPlan): Record<string, string> {
  return {
    'n-gpu-layers': plan.allLayersOffloaded ? 'all' : String(plan.nGpuLayers),
    'ctx-size': String(plan.ctxSize),
    parallel: String(plan.parallel),
    threads: String(plan.threads),
    ...(plan.tensorSplit ? { 'tensor-split': plan.tensorSplit.join(',') } : {}),
  };
}
