import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { buildAuth } from '@gguf-gateway/auth/wiring';
import { boundPort, closeServer, createLogger, createMetricsRegistry, createRedis, listen } from '@gguf-gateway/shared';
import { deleteRedisPrefix, testRedisPrefix, testSettings, TEST_AUTH_INTERNAL_TOKEN } from '@gguf-gateway/testkit';
import type { BenchRow, BenchSuite } from './bench.js';

const SECRET = 'sk-bench-0000000000000000000001';
const DURATION_SEC = 5;

async function measure(url: string, connections: number, body: object): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}/v1/authorize`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_AUTH_INTERNAL_TOKEN}` },
    body: JSON.stringify(body),
    connections,
    duration: DURATION_SEC,
  });
}

/** POST /v1/authorize over HTTP keep-alive to the real auth app on real Redis (rpm and tpm checked). */
export const authorizeBench: BenchSuite = {
  name: 'authorize',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'gg-bench-auth-'));
    const keysFile = join(dir, 'api_keys');
    await writeFile(keysFile, `bench:${SECRET} rpm=100000000 tpm=100000000\n`, { mode: 0o600 });
    const prefix = testRedisPrefix();
    const redis = createRedis(testSettings.TEST_REDIS_URL, 'request-path');
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    const auth = await buildAuth({
      logger: createLogger({ service: 'auth', level: 'warn' }),
      registry: createMetricsRegistry('auth'),
      redis,
      redisKeyPrefix: prefix,
      keysFile,
      keysFilePollMs: 250,
      prices: [],
      leaseTtlSec: 120,
      failedAuthMax: 1_000_000_000,
      failedAuthWindowSec: 60,
      internalToken: TEST_AUTH_INTERNAL_TOKEN,
    });
    const server = await listen(auth.app, 0, '127.0.0.1');
    const url = `http://127.0.0.1:${boundPort(server)}`;
    const rows: BenchRow[] = [];
    try {
      const cases = [
        { label: 'allowed', body: { key: SECRET, model: 'tiny', route: 'chat', ip: '10.0.0.1' } },
        {
          label: 'unknown key (401)',
          body: { key: 'sk-wrong-000000000000000', model: 'tiny', route: 'chat', ip: '10.0.0.1' },
        },
      ];
      for (const { label, body } of cases) {
        for (const connections of [1, 32]) {
          const result = await measure(url, connections, body);
          rows.push({
            case: `authorize, ${label}`,
            connections,
            'req/s': Math.round(result.requests.average),
            'p50 ms': result.latency.p50,
            'p99 ms': result.latency.p99,
            'non-2xx': result.non2xx,
            errors: result.errors + result.timeouts,
          });
        }
      }
    } finally {
      auth.stop();
      await closeServer(server);
      redis.disconnect();
      await deleteRedisPrefix(prefix);
      await rm(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
