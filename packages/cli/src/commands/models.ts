import { parseArgs } from 'node:util';
import { AdminApiError, AdminClient } from '../admin-client.js';
import { formatBytes, formatTable } from '../format.js';

/** A row of GET /admin/v1/models; status and lastUsedAt come from a gateway serving models on demand. */
interface LocalModel {
  name: string;
  bytes: number;
  sizeBytes?: number;
  quantization: string | null;
  contextLength: number | null;
  architecture: string | null;
  status?: 'loaded' | 'loading' | 'available' | 'failed';
  /** Why a failed model failed. */
  reason?: string | null;
  lastUsedAt?: string | null;
}

const utc = (iso: string | null | undefined) => (iso ? iso.slice(0, 19).replace('T', ' ') : '');

export const modelsCommand = {
  summary:
    'list the models on disk: size, quantisation, context, architecture, status (loaded, available...), last used',
  async run(args: string[]): Promise<number> {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
    try {
      const { data } = await new AdminClient().call<{ data: LocalModel[] }>('GET', '/models');
      if (values.json) {
        process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
        return 0;
      }
      const rows = data.map((m) => [
        m.name,
        formatBytes(m.sizeBytes ?? m.bytes),
        m.quantization ?? '',
        m.contextLength === null ? '' : String(m.contextLength),
        m.architecture ?? '',
        m.status === 'failed' && m.reason ? `failed: ${m.reason}` : (m.status ?? ''),
        utc(m.lastUsedAt),
      ]);
      process.stdout.write(
        `${formatTable(['NAME', 'SIZE', 'QUANT', 'CONTEXT', 'ARCH', 'STATUS', 'LAST USED (UTC)'], rows)}\n`,
      );
      return 0;
    } catch (err) {
      if (!(err instanceof AdminApiError) && (err as Error).name !== 'ConfigError') throw err;
      process.stderr.write(`error: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
