import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export interface Gpu {
  index: number;
  name: string;
  memoryTotalMiB: number;
  memoryUsedMiB: number;
}

export interface GpuDetection {
  gpus: Gpu[];
  /** Why no GPU is used, when none is. */
  reason: string | null;
}

export const NVIDIA_SMI_ARGS = [
  '--query-gpu=index,name,memory.total,memory.used',
  '--format=csv,noheader,nounits',
] as const;

/** Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): Gpu[] {
  return csv
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(',').map((f) => f.trim());
      if (fields.length < 4) throw new Error(`unexpected nvidia-smi line: ${line}`);
      const [index, memoryTotal, memoryUsed] = [fields[0], fields.at(-2), fields.at(-1)].map(Number);
      // A GPU name may itself contain a comma: it is everything between the first and the last two fields.
      const name = fields.slice(1, -2).join(', ');
      if (![index, memoryTotal, memoryUsed].every(Number.isFinite)) {
        throw new Error(`unexpected nvidia-smi line: ${line}`);
      }
      return { index: index!, name, memoryTotalMiB: memoryTotal!, memoryUsedMiB: memoryUsed! };
    });
}

/** Asks nvidia-smi for the GPUs; a missing binary or a failing driver means CPU, with the reason. */
export async function detectGpus(nvidiaSmi: string, timeoutMs = 15_000): Promise<GpuDetection> {
  try {
    const { stdout } = await promisify(execFile)(nvidiaSmi, [...NVIDIA_SMI_ARGS], { timeout: timeoutMs });
    const gpus = parseNvidiaSmi(stdout);
    return { gpus, reason: gpus.length === 0 ? 'nvidia-smi lists no GPU' : null };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') return { gpus: [], reason: `${nvidiaSmi} not found (no NVIDIA driver in this container)` };
    const said = `${e.stdout ?? ''} ${e.stderr ?? ''}`.trim().split('\n')[0] || e.message;
    return { gpus: [], reason: `nvidia-smi failed: ${said}` };
  }
}
