// The real gateway and auth processes (from dist) in front of real llama-servers with the tiny
// model, with a keys file, for the tests of the whole llama-server API through the gateway.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { USAGE_STREAM, redisKey, type UsageEvent } from '@gguf-gateway/shared';
import {
  LlamaServer,
  deleteRedisPrefix,
  freePort,
  startAuthProcess,
  startGatewayProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  type LlamaServerOptions,
  type ManagedProcess,
} from '@gguf-gateway/testkit';

export const INFERENCE_KEY = 'inference-key-0123456789abcdef';

export interface StackOptions {
  /** keys file lines */
  keys: string[];
  /** llama-servers by backend name */
  servers: Record<string, Omit<LlamaServerOptions, 'apiKey'>>;
  /** backends.yaml `models:` lines (indented by two spaces) */
  models: string[];
  /** extra backends.yaml `backends:` lines (for remote kinds) */
  extraBackends?: (servers: Record<string, LlamaServer>) => string[];
}

export class ApiStack {
  private constructor(
    readonly url: string,
    readonly servers: Record<string, LlamaServer>,
    private readonly auth: ManagedProcess,
    private readonly gateway: ManagedProcess,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly dir: string,
  ) {}

  static async start(options: StackOptions): Promise<ApiStack> {
    const prefix = testRedisPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'gg-api-e2e-'));
    const names = Object.keys(options.servers);
    const started = await Promise.all(
      names.map((name) => LlamaServer.start({ ...options.servers[name], apiKey: INFERENCE_KEY })),
    );
    const servers = Object.fromEntries(names.map((name, i) => [name, started[i]!]));
    const [authPort, apiPort, healthPort] = [await freePort(), await freePort(), await freePort()];
    const keysFile = join(dir, 'api_keys');
    writeFileSync(keysFile, [...options.keys, ''].join('\n'), { mode: 0o600 });
    const auth = startAuthProcess({ port: authPort, redisPrefix: prefix, keysFile });
    const authUrl = `http://127.0.0.1:${authPort}`;
    await waitFor('auth /readyz', async () => (await fetch(`${authUrl}/readyz`)).status === 200, 15_000);
    const backendsFile = join(dir, 'backends.yaml');
    writeFileSync(
      backendsFile,
      [
        'models:',
        ...options.models.map((m) => `  ${m}`),
        'backends:',
        ...names.map((name) => `  ${name}: { kind: llamacpp, url: "${servers[name]!.url}" }`),
        ...(options.extraBackends?.(servers) ?? []).map((b) => `  ${b}`),
      ].join('\n'),
    );
    const gateway = startGatewayProcess({
      port: apiPort,
      healthPort,
      redisPrefix: prefix,
      authUrl,
      backendsFile,
      env: { INFERENCE_API_KEY: INFERENCE_KEY },
    });
    const url = `http://127.0.0.1:${apiPort}`;
    await waitFor('gateway /ping 200', async () => (await fetch(`${url}/ping`)).status === 200, 15_000, 50);
    return new ApiStack(url, servers, auth, gateway, new Redis(testSettings.TEST_REDIS_URL), prefix, dir);
  }

  async stop(): Promise<void> {
    await stopProcess(this.gateway);
    await stopProcess(this.auth);
    await Promise.all(Object.values(this.servers).map((s) => s.stop()));
    this.redis.disconnect();
    await deleteRedisPrefix(this.prefix);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async usageEvents(): Promise<UsageEvent[]> {
    const entries = await this.redis.xrange(redisKey(this.prefix, USAGE_STREAM), '-', '+');
    return entries.map(([, f]) => JSON.parse(f[1]!) as UsageEvent);
  }

  /** The usage event of the request the gateway answered with this x-request-id. */
  usageEvent(requestId: string): Promise<UsageEvent> {
    return waitFor(`usage event ${requestId}`, async () =>
      (await this.usageEvents()).find((e) => e.requestId === requestId),
    );
  }

  /** The usage event of the latest request on a route (for SDKs that hide the response headers). */
  async lastUsageEvent(route: string, after: number): Promise<UsageEvent> {
    return waitFor(`usage event on ${route}`, async () =>
      (await this.usageEvents()).slice(after).find((e) => e.route === route),
    );
  }

  /** A request straight to a llama-server, with the backend's key. */
  async direct(server: string, path: string, body: object): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.servers[server]!.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${INFERENCE_KEY}` },
      body: JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  async busySlots(server: string): Promise<number> {
    const res = await fetch(`${this.servers[server]!.url}/slots`, {
      headers: { authorization: `Bearer ${INFERENCE_KEY}` },
    });
    const slots = (await res.json()) as { is_processing: boolean }[];
    return slots.filter((s) => s.is_processing).length;
  }
}
