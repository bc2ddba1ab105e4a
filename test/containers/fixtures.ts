import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@gguf-gateway/testkit';
import type { ComposeProject } from './docker.js';
import type { TestImages } from './images.js';

/** The host side of a compose stack: keys folder and secrets, as secrets/README.md says to make them. */
export interface HostFiles {
  dir: string;
  keysFile: string;
  adminKey: string;
  userKey: string;
  env: Record<string, string>;
}

const secret = () => randomBytes(24).toString('hex');

/** Writes a keys file as `gguf-gateway keys` does: a new file by rename, readable by the services' uid. */
export function writeKeys(path: string, lines: string[]): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, `${lines.join('\n')}\n`, { mode: 0o644 });
  chmodSync(temp, 0o644);
  renameSync(temp, path);
}

export function makeHostFiles(images: TestImages, gatewayPort: number): HostFiles {
  const dir = mkdtempSync(join(tmpdir(), 'gg-containers-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'keys'), { mode: 0o755 });
  const adminKey = `sk-admin-${secret()}`;
  const userKey = `sk-user-${secret()}`;
  const keysFile = join(dir, 'keys', 'api_keys');
  writeKeys(keysFile, [`admin:${adminKey} scope=admin`, `user:${userKey}`]);
  const files: Record<string, string> = {
    INFERENCE_API_KEY_FILE_HOST: 'inference_api_key',
    AUTH_INTERNAL_TOKEN_FILE_HOST: 'auth_internal_token',
    POSTGRES_PASSWORD_FILE_HOST: 'postgres_password',
    REDIS_PASSWORD_FILE_HOST: 'redis_password',
    HF_TOKEN_FILE_HOST: 'hf_token',
    GRAFANA_ADMIN_PASSWORD_FILE_HOST: 'grafana_admin_password',
  };
  const env: Record<string, string> = {};
  for (const [variable, name] of Object.entries(files)) {
    // The README's `openssl rand -hex 24 > secrets/NAME` (umask 022): mode 0644.
    writeFileSync(join(dir, name), name === 'hf_token' ? '' : `${secret()}\n`, { mode: 0o644 });
    env[variable] = join(dir, name);
  }
  Object.assign(env, {
    API_KEYS_DIR_HOST: join(dir, 'keys'),
    GGUF_GATEWAY_IMAGE: images.services.tag.split(':')[0]!,
    GGUF_GATEWAY_TAG: images.services.tag.split(':')[1]!,
    NODE_IMAGE: images.standins.NODE,
    POSTGRES_IMAGE: images.standins.POSTGRES,
    REDIS_IMAGE: images.standins.REDIS,
    LLAMA_CPP_IMAGE: images.standins.LLAMA_CPP,
    PROMETHEUS_IMAGE: images.standins.PROMETHEUS,
    GATEWAY_PUBLISH: `127.0.0.1:${gatewayPort}`,
    LLAMA_CTX_SIZE: '1024',
    LLAMA_PARALLEL: '2',
    LLAMA_THREADS: '1',
  });
  return { dir, keysFile, adminKey, userKey, env };
}

/** Waits until every listed service's container reports healthy; fails naming the ones that are not. */
export async function waitHealthy(project: ComposeProject, services: string[], timeoutMs = 240_000): Promise<void> {
  let last: Record<string, string> = {};
  try {
    await waitFor(
      `${services.join(', ')} healthy`,
      async () => {
        last = {};
        for (const service of services) {
          last[service] = await project
            .inspect(service, '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}')
            .catch(() => 'no container');
        }
        return Object.values(last).every((s) => s === 'running/healthy');
      },
      timeoutMs,
      2000,
    );
  } catch (err) {
    const logs = await project.logs();
    throw new Error(`${(err as Error).message}; states ${JSON.stringify(last)}\n${logs.slice(-6000)}`, {
      cause: err,
    });
  }
}
