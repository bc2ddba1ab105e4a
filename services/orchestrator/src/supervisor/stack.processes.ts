import { fileURLToPath } from 'node:url';
import { httpOk } from '../dependency.probes.js';
import { nodeServiceEnv, systemEnv } from './child-env.js';
import type { ProcessSpec } from './process.supervisor.js';
import type { RunAs } from './run-as.js';

/** services/, next to this service's own folder (we run from services/orchestrator/dist/supervisor). */
const SERVICES_DIR = fileURLToPath(new URL('../../../', import.meta.url));

export type NodeService = 'auth' | 'metrics' | 'worker' | 'gateway';

/** The uid and gid a spec runs as: RUN_AS_USER's when the supervisor is root, else its own. */
export function runAsIds(runAs: RunAs | undefined): Pick<ProcessSpec, 'uid' | 'gid'> {
  return runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
}

/** `node services/<name>/dist/main.js`, ready when its /readyz answers 200. */
export function nodeServiceSpec(
  name: NodeService,
  port: number,
  env: NodeJS.ProcessEnv,
  stopGraceMs: number,
  runAs?: RunAs,
): ProcessSpec {
  return {
    name,
    command: process.execPath,
    args: [`${SERVICES_DIR}${name}/dist/main.js`],
    env: nodeServiceEnv(name, { ...env, PORT: String(port) }),
    ...runAsIds(runAs),
    ready: () => httpOk(`http://127.0.0.1:${port}/readyz`),
    stopGraceMs,
  };
}

/**
 * llama-server with the arguments the gates chose, on loopback; its key comes by environment, not
 * argv. `llamaCache`: llama.cpp's download cache, which the router also lists models from; a folder
 * of ours that stays empty, not HOME's (RUN_AS_USER may not even read root's HOME).
 */
export function llamaServerSpec(
  bin: string,
  args: string[],
  port: number,
  apiKey: string,
  env: NodeJS.ProcessEnv,
  readyTimeoutMs: number,
  llamaCache: string,
  runAs?: RunAs,
): ProcessSpec {
  return {
    name: 'llama-server',
    command: bin,
    args: [...args, '--host', '127.0.0.1', '--port', String(port), '--metrics', '--slots', '--no-webui'],
    env: { ...systemEnv(env), LLAMA_API_KEY: apiKey, LLAMA_CACHE: llamaCache },
    ...runAsIds(runAs),
    ready: () => httpOk(`http://127.0.0.1:${port}/health`),
    readyTimeoutMs,
    stopGraceMs: 10_000,
  };
}
