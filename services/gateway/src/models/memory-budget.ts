import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { Logger } from '@gguf-gateway/shared';

/** The memory loaded models may take, and on which device. */
export interface MemoryBudget {
  device: 'cuda' | 'cpu';
  bytes: number;
  /** Where the figure came from, for the log line at start. */
  source: string;
}

/**
 * MODELS_MEMORY_BYTES when set; else the orchestrator's memory-budget.json (VRAM from nvidia-smi,
 * or RAM); else this machine's RAM, with a warning (the gateway may run on another machine than
 * llama-server).
 */
export function readMemoryBudget(
  config: { MODELS_MEMORY_BYTES?: number; MODELS_MEMORY_FILE?: string },
  logger: Logger,
): MemoryBudget {
  if (config.MODELS_MEMORY_BYTES)
    return { device: 'cpu', bytes: config.MODELS_MEMORY_BYTES, source: 'MODELS_MEMORY_BYTES' };
  if (config.MODELS_MEMORY_FILE) {
    try {
      const file = JSON.parse(readFileSync(config.MODELS_MEMORY_FILE, 'utf8')) as { device?: string; bytes?: number };
      if (typeof file.bytes === 'number' && file.bytes > 0) {
        return {
          device: file.device === 'cuda' ? 'cuda' : 'cpu',
          bytes: file.bytes,
          source: config.MODELS_MEMORY_FILE,
        };
      }
      logger.warn({ file: config.MODELS_MEMORY_FILE }, 'MODELS_MEMORY_FILE has no positive "bytes": using RAM');
    } catch (err) {
      logger.warn(
        { file: config.MODELS_MEMORY_FILE, err: (err as Error).message },
        'MODELS_MEMORY_FILE is not readable: using RAM',
      );
    }
  } else {
    logger.warn("neither MODELS_MEMORY_BYTES nor MODELS_MEMORY_FILE is set: the memory budget is this machine's RAM");
  }
  return { device: 'cpu', bytes: totalmem(), source: 'os.totalmem()' };
}
