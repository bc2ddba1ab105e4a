// `npm run bench -- models`: models on demand. A real llama-server in router mode serves two tiny
// models from a folder; the gateway (its own process, from dist) sits in front with MODELS_ROUTER_URL.
// Figures: time to first token of a cold model (loaded by the request) against a loaded one, the
// gateway's added latency on a loaded model against the router called directly, and the admission
// call itself (acquire + release on a loaded model), timed with performance.now over many calls.
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  deleteRedisPrefix,
  freePort,
  LlamaServer,
  repoRoot,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import { ModelAdmission } from '../../services/gateway/src/models/model-admission.js';
import { AuthStub } from '../../services/gateway/test/support/auth-stub.js';
import type { BenchRow, BenchSuite } from './bench.js';

const KEY = 'sk-bench-models-0123456789';
const INFERENCE_KEY = 'inference-key-0123456789abcdef';
const COLD_ROUNDS = 3;
const WARM_ROUNDS = 20;
const LATENCY_REQUESTS = 300;
const ADMISSION_CALLS = 200_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const p50 = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

/** Milliseconds from sending a streamed chat request to its first content chunk (resolved at its end). */
function timeToFirstToken(baseUrl: string, model: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`${model}: status ${res.statusCode}`));
      // Resolved once the stream has ended, so that the model is idle again for the next round.
      let ttft: number | null = null;
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
        // The first delta with content (its name may arrive split across two reads).
        if (ttft === null && /"content":"/.test(body)) ttft = performance.now() - started;
      });
      res.on('end', () =>
        ttft === null ? reject(new Error(`${model}: no content chunk in ${body.slice(0, 300)}`)) : resolve(ttft),
      );
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }));
  });
}

/** p50 of one-at-a-time non-streamed requests on one keep-alive connection. */
async function latencyP50(baseUrl: string, model: string, key: string): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // llama-server closes a keep-alive connection after 100 requests without saying so: a request
  // that finds its reused connection closed is sent again, as the gateway does.
  const once = (): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const req = http.request(`${baseUrl}/v1/chat/completions`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      });
      req.on('response', (res) => {
        if (res.statusCode !== 200) reject(new Error(`${baseUrl}: status ${res.statusCode}`));
        res.resume();
        res.on('end', () => resolve(performance.now() - started));
      });
      req.on('error', (err) => (req.reusedSocket ? once().then(resolve, reject) : reject(err)));
      req.end(JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }));
    });
  for (let i = 0; i < 20; i += 1) await once();
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_REQUESTS; i += 1) samples.push(await once());
  agent.destroy();
  return p50(samples);
}

/** acquire + release of a loaded model, the admission layer's whole work on the request path. */
async function admissionCallP50(): Promise<{ p50: number; p99: number }> {
  const admission = new ModelAdmission(
    { load: async () => undefined, unload: async () => undefined },
    {
      maxLoaded: 2,
      memoryBytes: 1 << 30,
      capacityWaitMs: 1000,
      loadTimeoutMs: 1000,
      idleUnloadMs: 0,
      pinned: new Set(),
    },
    { loaded: () => undefined, evicted: () => undefined, waiting: () => undefined, loadedCount: () => undefined },
  );
  const model = { name: 'bench', routerId: 'bench', bytes: 1 << 20 };
  (await admission.acquire(model))();
  const samples = new Float64Array(ADMISSION_CALLS);
  for (let i = 0; i < ADMISSION_CALLS; i += 1) {
    const started = performance.now();
    const release = await admission.acquire(model);
    release();
    samples[i] = performance.now() - started;
  }
  samples.sort();
  return { p50: samples[Math.floor(ADMISSION_CALLS / 2)]!, p99: samples[Math.floor(ADMISSION_CALLS * 0.99)]! };
}

export const modelsBench: BenchSuite = {
  name: 'models',
  async run(): Promise<BenchRow[]> {
    const prefix = testRedisPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'gg-models-bench-'));
    const modelsDir = join(dir, 'models');
    mkdirSync(modelsDir);
    await writeTinyLlama(join(modelsDir, 'cold.gguf'), 11);
    await writeTinyLlama(join(modelsDir, 'warm.gguf'), 12);
    let router: LlamaServer | null = null;
    let auth: AuthStub | null = null;
    let gateway: ManagedProcess | null = null;
    try {
      router = await LlamaServer.startRouter({ modelsDir, apiKey: INFERENCE_KEY });
      auth = await AuthStub.start({ keys: [{ id: 'bench', secret: KEY, rpm: 1_000_000_000, scopes: ['admin'] }] });
      const [port, healthPort] = [await freePort(), await freePort()];
      const backendsFile = join(dir, 'backends.yaml');
      writeFileSync(backendsFile, 'models: {}\nbackends: {}\n');
      gateway = startProcess(process.execPath, [join(repoRoot, 'services/gateway/dist/main.js')], {
        env: {
          ...process.env,
          PORT: String(port),
          PORT_HEALTH: String(healthPort),
          REDIS_URL: testSettings.TEST_REDIS_URL,
          REDIS_KEY_PREFIX: prefix,
          AUTH_URL: auth.url,
          AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
          BACKENDS_FILE: backendsFile,
          INFERENCE_API_KEY: INFERENCE_KEY,
          MODELS_DIR: modelsDir,
          MODELS_ROUTER_URL: router.url,
          MODELS_MAX_LOADED: '2',
          MODELS_MEMORY_BYTES: String(8 * 1024 ** 3),
          LOG_LEVEL: 'warn',
        },
      });
      const url = `http://127.0.0.1:${port}`;
      await waitFor('gateway /ping', async () => (await fetch(`${url}/ping`)).status === 200, 30_000, 50);
      const admin = (path: string) =>
        fetch(`${url}/admin/v1/models/${path}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } }).then(
          async (res) => {
            if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
          },
        );

      const cold: number[] = [];
      for (let i = 0; i < COLD_ROUNDS; i += 1) {
        cold.push(await timeToFirstToken(url, 'cold', KEY));
        await admin('cold/unload');
      }
      await timeToFirstToken(url, 'warm', KEY);
      const warm: number[] = [];
      for (let i = 0; i < WARM_ROUNDS; i += 1) warm.push(await timeToFirstToken(url, 'warm', KEY));

      const direct = await latencyP50(router.url, 'warm', INFERENCE_KEY);
      const through = await latencyP50(url, 'warm', KEY);
      const call = await admissionCallP50();
      return [
        { case: 'TTFT, cold model (loaded by the request)', 'p50 ms': p50(cold), rounds: COLD_ROUNDS },
        { case: 'TTFT, loaded model', 'p50 ms': p50(warm), rounds: WARM_ROUNDS },
        { case: 'non-streamed request on a loaded model: router direct', 'p50 ms': direct, rounds: LATENCY_REQUESTS },
        {
          case: 'the same through the gateway (auth stub, admission, metering)',
          'p50 ms': through,
          'added p50 ms': through - direct,
          rounds: LATENCY_REQUESTS,
        },
        {
          case: 'admission call (acquire + release, loaded model), in process',
          'p50 ms': call.p50.toFixed(5),
          'p99 ms': call.p99.toFixed(5),
          rounds: ADMISSION_CALLS,
        },
      ];
    } finally {
      if (gateway) await stopProcess(gateway);
      await auth?.stop();
      await router?.stop();
      await deleteRedisPrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
