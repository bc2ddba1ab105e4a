import { z } from 'zod';
import type { GpuDetection } from './gpu-detector.js';

// `<DATA_DIR>/memory-budget.json`: what the orchestrator found the models may fill, written next to
// the llama-server arguments and read by the gateway (MODELS_MEMORY_FILE) to decide how many models
// fit at once. The gateway keeps its own safety margin: these are the totals the machine reports.

export const memoryBudgetSchema = z.object({
  /** cuda: the models load into the GPUs' VRAM; cpu: into RAM. */
  device: z.enum(['cuda', 'cpu']),
  /** VRAM of every GPU together, or the machine's RAM. */
  bytes: z.number().int().nonnegative(),
  gpus: z.array(z.object({ name: z.string(), memoryTotalMiB: z.number().nonnegative() })),
});

export type MemoryBudget = z.infer<typeof memoryBudgetSchema>;

const MiB = 1024 * 1024;

/** The budget for what the GPU detection found: every GPU's VRAM, else `ramBytes`. */
export function memoryBudgetOf(detection: GpuDetection, ramBytes: number): MemoryBudget {
  const gpus = detection.gpus.map((g) => ({ name: g.name, memoryTotalMiB: g.memoryTotalMiB }));
  if (gpus.length === 0) return { device: 'cpu', bytes: ramBytes, gpus: [] };
  return { device: 'cuda', bytes: gpus.reduce((sum, g) => sum + g.memoryTotalMiB * MiB, 0), gpus };
}
