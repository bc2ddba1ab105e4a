import { join } from 'node:path';
import { freePort, repoRoot, startProcess, stopProcess, waitFor, type ManagedProcess } from '@gguf-gateway/testkit';

export interface RunningService {
  name: string;
  url: string;
  address: string;
  proc: ManagedProcess;
  stop(): Promise<void>;
}

/** A service of this repository as production runs it: `node services/<name>/dist/main.js`. */
export async function startService(
  name: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<RunningService> {
  const port = await freePort();
  const proc = startProcess(process.execPath, [join(repoRoot, `services/${name}/dist/main.js`), ...args], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', PORT: String(port), ...env },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${name} /healthz`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`${name} exited:\n${proc.output()}`);
    return (await fetch(`${url}/healthz`)).ok;
  });
  return { name, url, address: `127.0.0.1:${port}`, proc, stop: () => stopProcess(proc) };
}
