import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { freePort, waitFor } from '@gguf-gateway/testkit';
import { docker, runId } from './docker.js';
import { testImages, type TestImages } from './images.js';

/**
 * The all-in-one image as a RunPod / Vast.ai pod runs it: one container on the llama.cpp stand-in,
 * a root-owned volume at /workspace, /ping for the load balancer, the OpenAI API on 8080.
 */
describe('containers: the all-in-one image', function () {
  this.timeout(20 * 60_000);
  const id = runId();
  const adminKey = `sk-admin-${randomBytes(16).toString('hex')}`;
  const hfToken = `hf_${randomBytes(12).toString('hex')}`;
  let images: TestImages;
  let volume: string;
  let apiPort: number;
  let pingPort: number;
  let openai: OpenAI;
  const containers: string[] = [];

  const ping = () =>
    fetch(`http://127.0.0.1:${pingPort}/ping`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.status,
      () => 0,
    );
  const usageRequests = async () => {
    const res = await fetch(`http://127.0.0.1:${apiPort}/admin/v1/usage`, {
      headers: { authorization: `Bearer ${adminKey}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { totals: { requests: number } }).totals.requests;
  };

  /** Starts a container on the volume; resolves with the /ping answers seen until it was ready. */
  async function startPod(name: string): Promise<number[]> {
    containers.push(name);
    // prettier-ignore
    await docker([
      'run', '-d', '--name', name,
      '-p', `127.0.0.1:${apiPort}:8080`, '-p', `127.0.0.1:${pingPort}:8081`,
      '-v', `${volume}:/workspace`,
      '-e', 'MODEL_PATH=tiny.gguf', '-e', 'LLAMA_CTX_SIZE=1024', '-e', 'LLAMA_PARALLEL=2', '-e', 'LLAMA_THREADS=1',
      '-e', 'SHUTDOWN_GRACE_MS=20000', '-e', `HF_TOKEN=${hfToken}`,
      '--stop-timeout', '60',
      images.allInOne.tag,
    ]);
    const seen: number[] = [];
    try {
      await waitFor(
        `${name} /ping 200`,
        async () => {
          const status = await ping();
          if (status && seen.at(-1) !== status) seen.push(status);
          if ((await docker(['inspect', '--format', '{{.State.Running}}', name])).stdout.trim() !== 'true') {
            throw new Error('the container exited');
          }
          return status === 200;
        },
        300_000,
        100,
      );
    } catch (err) {
      const logs = await docker(['logs', '--tail', '80', name]).catch(() => ({ stdout: '', stderr: '' }));
      throw new Error(`${(err as Error).message}\n${logs.stdout}${logs.stderr}`, { cause: err });
    }
    return seen;
  }

  before(async () => {
    images = await testImages();
    volume = mkdtempSync(join(tmpdir(), `gg-workspace-${id}-`));
    // A platform volume: root's, and the keys file only root may read.
    chmodSync(volume, 0o755);
    writeFileSync(join(volume, 'api_keys'), `admin:${adminKey} scope=admin\n`, { mode: 0o600 });
    mkdirSync(join(volume, 'models'));
    await writeTinyLlama(join(volume, 'models', 'tiny.gguf'));
    apiPort = await freePort();
    pingPort = await freePort();
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${apiPort}/v1`, apiKey: adminKey, maxRetries: 0 });
  });

  after(async () => {
    if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers]).catch(() => undefined);
    if (volume) rmSync(volume, { recursive: true, force: true });
  });

  it('answers /ping 204 while starting, then 200, and serves the OpenAI SDK on 8080', async () => {
    const seen = await startPod(`gg-aio-${id}-1`);
    assert.deepEqual(seen.slice(-2), [204, 200], `ping answers: ${seen.join(', ')}`);
    const models = await openai.models.list();
    assert.ok(models.data.some((m) => m.id === 'default'));
    const completion = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
    });
    assert.equal(completion.usage?.completion_tokens, 8);
  });

  it('keeps its data under /workspace', () => {
    for (const path of ['postgres/data/PG_VERSION', 'redis', 'models/tiny.gguf', 'llama-server.args']) {
      assert.ok(existsSync(join(volume, path)), `${path} is not on the volume`);
    }
  });

  it('runs every process but the supervisor as a non-root user, and gives HF_TOKEN to the worker only', async () => {
    const name = `gg-aio-${id}-1`;
    // uid, then whether HF_TOKEN is in its environment, then its command line, per process. As the
    // services' user: another uid's environment is unreadable without CAP_SYS_PTRACE, and docker
    // exec would hand the container's HF_TOKEN to this probe.
    const { stdout } = await docker([
      'exec',
      '--user',
      'gguf',
      name,
      'env',
      '-u',
      'HF_TOKEN',
      'sh',
      '-c',
      'for p in /proc/[0-9]*; do [ -r $p/cmdline ] || continue; c=$(tr "\\0" " " < $p/cmdline); [ -n "$c" ] || continue; ' +
        'u=$(awk "/^Uid:/{print \\$2}" $p/status); ' +
        'if tr "\\0" "\\n" < $p/environ >/dev/null 2>&1; then t=$(tr "\\0" "\\n" < $p/environ | grep -c "^HF_TOKEN="); else t=unreadable; fi; ' +
        'echo "$u|$t|$c"; done',
    ]);
    const processes = stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [uid, token, ...command] = line.split('|');
        return { uid: Number(uid), token: token!, command: command.join('|') };
      })
      .filter((p) => !p.command.startsWith('sh -c for p in'));
    const byRole = (pattern: RegExp) => processes.filter((p) => pattern.test(p.command));
    const supervisor = byRole(/orchestrator\/dist\/main\.js supervise/);
    assert.equal(supervisor.length, 1, stdout);
    for (const role of [
      /redis-server/,
      /postgres -D/,
      /llama-server/,
      /services\/(auth|metrics|worker|gateway)\/dist/,
    ]) {
      const found = byRole(role);
      assert.ok(found.length > 0, `no ${role} process:\n${stdout}`);
      for (const p of found) assert.notEqual(p.uid, 0, `${p.command} runs as root`);
    }
    for (const p of byRole(/redis-server|llama-server|services\/(auth|metrics|worker|gateway)\/dist/)) {
      assert.notEqual(p.token, 'unreadable', `${p.command} runs as another user than gguf`);
    }
    const withToken = processes.filter((p) => p.token === '1').map((p) => p.command);
    assert.equal(withToken.length, 1, `HF_TOKEN reaches ${withToken.join('; ')}`);
    assert.match(withToken[0]!, /services\/worker\/dist\/main\.js/);
  });

  it('drains a stream on docker stop and exits 0', async () => {
    const name = `gg-aio-${id}-1`;
    const stream = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'tell a long story' }],
      max_tokens: 400,
      stream: true,
    });
    let stopping: Promise<unknown> | null = null;
    let content = 0;
    let finish: string | null | undefined = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) content++;
      finish = chunk.choices[0]?.finish_reason ?? finish;
      stopping ??= docker(['stop', '-t', '60', name], { timeoutMs: 90_000 });
    }
    await stopping;
    assert.ok(content > 1, 'the stream was cut');
    assert.equal(finish, 'length', 'the stream did not run to its end');
    assert.equal((await docker(['inspect', '--format', '{{.State.ExitCode}}', name])).stdout.trim(), '0');
  });

  it('reuses the data of the volume on a second start', async () => {
    const cluster = statSync(join(volume, 'postgres/data/PG_VERSION')).mtimeMs;
    await startPod(`gg-aio-${id}-2`);
    assert.equal(statSync(join(volume, 'postgres/data/PG_VERSION')).mtimeMs, cluster, 'Postgres was initialized again');
    // The first pod's chat, its stream and its usage query are rows in the volume's Postgres.
    await waitFor('the first pod usage', async () => (await usageRequests()) >= 2, 30_000, 500);
  });
});
