// BACKENDS_FILE at start and on reload: a broken file stops the gateway with a message naming the
// line and field; a reload (file change or SIGHUP) swaps the routing table without touching
// requests in flight; a broken reload keeps the last good table and says why in the log and on /readyz.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  repoRoot,
  startProcess,
  stopProcess,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const GATEWAY_MAIN = join(repoRoot, 'services/gateway/dist/main.js');

const twoBackends = (one: string, two: string) => `
backends:
  one: { kind: llamacpp, url: "${one}" }
  two: { kind: llamacpp, url: "${two}" }
`;

describe('BACKENDS_FILE reload', function () {
  let dir: string;
  let file: string;
  let one: FakeOpenAI;
  let two: FakeOpenAI;
  let auth: AuthStub;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-backends-'));
    file = join(dir, 'backends.yaml');
    // 20 chunks 25 ms apart: a stream that is still running while the file changes.
    one = await FakeOpenAI.start({ chunks: 20, chunkIntervalMs: 25 });
    two = await FakeOpenAI.start();
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
  });

  after(async () => {
    await auth.stop();
    await one.stop();
    await two.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (base: string, path: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${USER}` } });
  const chat = (base: string, model: string, body: Record<string, unknown> = {}) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...body }),
    });
  const modelIds = async (base: string) =>
    ((await (await get(base, '/v1/models')).json()) as { data: { id: string }[] }).data.map((m) => m.id);

  describe('in process, watching the file', () => {
    let gateway: GatewayHarness;

    before(async () => {
      writeFileSync(file, `models:\n  m: { tiers: [[one]] }\n${twoBackends(one.url, two.url)}`);
      gateway = await GatewayHarness.start({ authUrl: auth.url, backendsFile: file });
    });

    after(async () => {
      await gateway.stop();
    });

    it('swaps the routing table when the file changes, while a stream in flight finishes on its backend', async () => {
      const stream = await chat(gateway.url, 'm', { stream: true });
      assert.equal(stream.headers.get('x-gateway-backend'), 'one');
      writeFileSync(file, `models:\n  m: { aliases: [m-new], tiers: [[two]] }\n${twoBackends(one.url, two.url)}`);
      await waitFor('the new table', async () => (await modelIds(gateway.url)).includes('m-new'), 3000, 20);

      const after = await chat(gateway.url, 'm');
      assert.equal(after.status, 200);
      assert.equal(after.headers.get('x-gateway-backend'), 'two');
      const text = await stream.text();
      assert.equal(text.match(/"content":"tok"/g)?.length, 20, 'all 20 chunks of the old backend');
      assert.ok(text.endsWith('data: [DONE]\n\n'));
    });

    it('keeps the last good table when the new file is broken, and says which line and field', async () => {
      writeFileSync(
        file,
        `models:\n  m: { tiers: [[two]] }\n  other: { tiers: [[nowhere]] }\n${twoBackends(one.url, two.url)}`,
      );
      await waitFor('the reload problem', async () => gateway.watcher!.problem, 3000, 20);
      assert.match(gateway.watcher!.problem!, /line 3: models\.other\.tiers\.0\.0: unknown backend "nowhere"/);
      assert.match(gateway.logs.text(), /BACKENDS_FILE reload failed, serving the last good config/);
      assert.deepEqual(await modelIds(gateway.url), ['m', 'm-new']);
      assert.equal((await chat(gateway.url, 'm-new')).headers.get('x-gateway-backend'), 'two');

      writeFileSync(file, `models:\n  m: { tiers: [[one]] }\n${twoBackends(one.url, two.url)}`);
      await waitFor('a good reload', async () => gateway.watcher!.problem === null, 3000, 20);
      assert.deepEqual(await modelIds(gateway.url), ['m']);
    });
  });

  describe('the gateway process', () => {
    const env = (port: number, healthPort: number, extra: Record<string, string> = {}) => ({
      ...process.env,
      PORT: String(port),
      PORT_HEALTH: String(healthPort),
      REDIS_URL: testSettings.TEST_REDIS_URL,
      AUTH_URL: auth.url,
      AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
      BACKENDS_FILE: file,
      BACKENDS_FILE_POLL_MS: '600000',
      LOG_LEVEL: 'info',
      ...extra,
    });

    async function exitOf(proc: ManagedProcess): Promise<{ code: number | null; output: string }> {
      const code = await proc.exited;
      return { code, output: proc.output() };
    }

    it('refuses to start with a broken file, naming the line and field', async () => {
      writeFileSync(file, `models:\n  m: { tiers: [[one]] }\nbackends:\n  one: { kind: llamacpp, url: "not a url" }\n`);
      const { code, output } = await exitOf(
        startProcess(process.execPath, [GATEWAY_MAIN], { env: env(await freePort(), await freePort()) }),
      );
      assert.equal(code, 1);
      assert.match(output, /line 4: backends\.one\.url: Invalid url/);
    });

    it('refuses to start when a key variable the file names is not set', async () => {
      writeFileSync(
        file,
        `models:\n  m: { tiers: [[remote]] }\nbackends:\n  remote: { kind: openai, url: "https://example.invalid", apiKeyEnv: GG_TEST_UNSET_KEY }\n`,
      );
      const { code, output } = await exitOf(
        startProcess(process.execPath, [GATEWAY_MAIN], { env: env(await freePort(), await freePort()) }),
      );
      assert.equal(code, 1);
      assert.match(output, /backends\.remote\.apiKeyEnv: GG_TEST_UNSET_KEY \(or GG_TEST_UNSET_KEY_FILE\) is not set/);
    });

    it('reloads on SIGHUP, and reports a broken reload as degraded on /readyz while it keeps serving', async () => {
      writeFileSync(file, `models:\n  m: { tiers: [[one]] }\n${twoBackends(one.url, two.url)}`);
      const port = await freePort();
      const healthPort = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const gateway = startProcess(process.execPath, [GATEWAY_MAIN], { env: env(port, healthPort) });
      try {
        await waitFor(
          'gateway up',
          async () => (await fetch(`${base}/healthz`).catch(() => null))?.status === 200,
          15_000,
          50,
        );
        assert.deepEqual(await modelIds(base), ['m']);

        writeFileSync(file, `models:\n  m2: { tiers: [[two]] }\n${twoBackends(one.url, two.url)}`);
        gateway.child.kill('SIGHUP');
        await waitFor('SIGHUP reload', async () => (await modelIds(base)).includes('m2'), 3000, 20);

        writeFileSync(file, 'models: [unclosed');
        gateway.child.kill('SIGHUP');
        const readyz = await waitFor(
          '/readyz naming the broken reload',
          async () => {
            // The details are on the health port; the API port's /readyz says only the status.
            const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
            const body = (await res.json()) as { status: string; checks: Record<string, string> };
            return body.checks.backends_file !== 'ok' ? { ...body, httpStatus: res.status } : null;
          },
          3000,
          20,
        );
        // Still ready (it serves the last good table), but it says what is wrong.
        assert.equal(readyz.httpStatus, 200);
        assert.equal(readyz.status, 'degraded');
        assert.match(
          readyz.checks.backends_file!,
          /reload failed, serving the last good config: Invalid backends file: not valid YAML/,
        );
        assert.deepEqual(await modelIds(base), ['m2']);
        assert.equal((await chat(base, 'm2')).status, 200);
      } finally {
        await stopProcess(gateway);
      }
    });
  });
});
