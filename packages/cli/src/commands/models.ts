import { parseArgs } from 'node:util';
import { AdminApiError, AdminClient } from '../admin-client.js';
import { formatBytes, formatTable } from '../format.js';

interface LocalModel {
  name: string;
  bytes: number;
  quantization: string | null;
  contextLength: number | null;
  architecture: string | null;
  pulledAt: string;
}

export const modelsCommand = {
  summary: 'list the models pulled to the models directory',
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
        formatBytes(m.bytes),
        m.quantization ?? '',
        m.contextLength === null ? '' : String(m.contextLength),
        m.architecture ?? '',
        m.pulledAt.slice(0, 19).replace('T', ' '),
      ]);
      process.stdout.write(`${formatTable(['NAME', 'SIZE', 'QUANT', 'CONTEXT', 'ARCH', 'PULLED (UTC)'], rows)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof AdminApiError) && (err as Error).name !== 'ConfigError') throw err;
      process.stderr.write(`error: ${(err as Error).message}\n`);
      return 1;
    }
  },
};
