import { parseArgs } from 'node:util';
import type { PullProgress } from '@gguf-gateway/shared/contracts';
import { modelNameOfFile, type PullJobResult } from '@gguf-gateway/shared/pull-request';
import { AdminApiError, AdminClient } from '../admin-client.js';
import { formatBytes, formatDuration } from '../format.js';

const USAGE = 'usage: gguf-gateway pull <repo> <file> [--revision <rev>] [--sha256 <hex>] [--name <file name>]';

interface JobEvent {
  id: string;
  state: string;
  progress: PullProgress | null;
  error: string | null;
  result: PullJobResult | null;
}

function progressLine(p: PullProgress): string {
  const width = 30;
  const ratio = p.bytesTotal > 0 ? Math.min(p.bytesDone / p.bytesTotal, 1) : 0;
  const filled = Math.round(ratio * width);
  return [
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
    `${(ratio * 100).toFixed(0).padStart(3)}%`,
    `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}`,
    `${formatBytes(p.bytesPerSec)}/s`,
    `ETA ${formatDuration(p.etaSec)}`,
    p.phase,
  ].join('  ');
}

/** Redraws one line on a terminal; elsewhere (logs, CI) prints a line a second. */
function progressWriter(out: NodeJS.WriteStream) {
  let lastPrinted = 0;
  return {
    update(p: PullProgress) {
      if (out.isTTY) out.write(`\r${progressLine(p)}\x1b[K`);
      else if (Date.now() - lastPrinted >= 1000 || p.phase !== 'downloading') {
        out.write(`${progressLine(p)}\n`);
        lastPrinted = Date.now();
      }
    },
    end() {
      if (out.isTTY) out.write('\n');
    },
  };
}

async function pull(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { revision: { type: 'string' }, sha256: { type: 'string' }, name: { type: 'string' } },
  });
  const [repo, file] = positionals;
  if (!repo || !file || positionals.length > 2) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const client = new AdminClient();
  const { jobId, deduplicated } = await client.call<{ jobId: string; deduplicated: boolean }>('POST', '/models/pull', {
    source: { repo, file, ...(values.revision ? { revision: values.revision } : {}) },
    ...(values.sha256 ? { sha256: values.sha256 } : {}),
    ...(values.name ? { name: values.name } : {}),
  });
  process.stderr.write(`pulling ${repo}/${file} (job ${jobId}${deduplicated ? ', already running' : ''})\n`);
  const bar = progressWriter(process.stderr);
  for await (const { event, data } of client.events(`/jobs/${encodeURIComponent(jobId)}/events`)) {
    const job = data as JobEvent;
    if (job.progress) bar.update(job.progress);
    if (event === 'completed' && job.result) {
      bar.end();
      const note = job.result.alreadyPresent ? ' (already on disk)' : '';
      process.stderr.write(
        `done: ${job.result.name}, ${formatBytes(job.result.bytes)}, sha256 ${job.result.sha256}${note}\n`,
      );
      process.stdout.write(`${job.result.path}\n`);
      // Last, where the eye lands: every model on disk is served by this name, no restart needed.
      process.stderr.write(`call it as: ${modelNameOfFile(job.result.name)}\n`);
      return 0;
    }
    if (event === 'failed' || event === 'cancelled' || event === 'error') {
      bar.end();
      const reason =
        event === 'error' ? ((data as { error?: { message?: string } }).error?.message ?? 'unknown error') : job.error;
      process.stderr.write(`pull ${event === 'cancelled' ? 'cancelled' : `failed: ${reason ?? 'unknown error'}`}\n`);
      return 1;
    }
  }
  bar.end();
  process.stderr.write('pull status unknown: the gateway closed the progress stream\n');
  return 1;
}

export const pullCommand = {
  summary: 'pull a GGUF model from Hugging Face, with a progress bar',
  async run(args: string[]): Promise<number> {
    try {
      return await pull(args);
    } catch (err) {
      if (!(err instanceof AdminApiError) && !(err instanceof TypeError) && (err as Error).name !== 'ConfigError')
        throw err;
      process.stderr.write(`error: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
