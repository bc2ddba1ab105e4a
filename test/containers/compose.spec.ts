import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { freePort, waitFor } from '@gguf-gateway/testkit';
import { ComposeProject, docker, runId } from './docker.js';
import { makeHostFiles, waitHealthy, writeKeys, type HostFiles } from './fixtures.js';
import { testImages } from './images.js';

const RUNNING = ['postgres', 'redis', 'auth', 'metrics', 'worker', 'inference', 'gateway'];
const NODE_SERVICES = ['init', 'auth', 'metrics', 'worker', 'gateway'];

/**
 * docker-compose.yml as a user runs it on a machine without a GPU: both images built from this
 * checkout on stand-ins of the registry images, the tiny model copied into the models volume as the
 * README says, and the OpenAI SDK on the published port.
 */
describe('containers: docker-compose stack on the CPU', function () {
  this.timeout(20 * 60_000);
  let project: ComposeProject;
  let host: HostFiles;
  let port: number;
  let openai: OpenAI;

  const api = (path: string, key: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
      signal: AbortSignal.timeout(30_000),
    });
  const chat = (key: string) =>
    api('/v1/chat/completions', key, {
      method: 'POST',
      body: JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
    });

  before(async function () {
    const images = await testImages();
    port = await freePort();
    host = makeHostFiles(images, port);
    project = new ComposeProject(`ggtest${runId()}`, { ...host.env, MODEL_PATH: 'tiny.gguf' });
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: host.userKey, maxRetries: 0 });
    // README, "A model of your own": start the worker, copy the file into its models volume, start the rest.
    await project.run(['up', '-d', '--no-build', 'worker'], 300_000);
    await writeTinyLlama(join(host.dir, 'tiny.gguf'));
    const worker = (await project.containerId('worker'))!;
    await docker(['cp', join(host.dir, 'tiny.gguf'), `${worker}:/models/tiny.gguf`]);
    const started = Date.now();
    await project.run(['up', '-d', '--no-build'], 600_000);
    await waitHealthy(project, RUNNING);
    console.log(`    compose stack healthy ${Math.round((Date.now() - started) / 1000)} s after up -d`);
  });

  after(async () => {
    if (project) await project.down();
    if (host) rmSync(host.dir, { recursive: true, force: true });
  });

  it('runs init to completion and inference as a router with the arguments and models preset init wrote', async () => {
    assert.equal(await project.inspect('init', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 0');
    const inference = (await project.containerId('inference'))!;
    const written = (await docker(['exec', inference, 'cat', '/data/llama-server.args'])).stdout.trim().split('\n');
    const cmdline = (await docker(['exec', inference, 'cat', '/proc/1/cmdline'])).stdout.split('\0');
    // llama-server's router over the models volume, with the preset init wrote beside the arguments.
    assert.deepEqual(written.slice(0, 4), [
      '--models-dir',
      '/models',
      '--models-preset',
      '/data/llama-server.models.ini',
    ]);
    const preset = (await docker(['exec', inference, 'cat', '/data/llama-server.models.ini'])).stdout;
    assert.match(preset, /^\[tiny\]\nalias = default,gpt-4o-mini$/m);
    assert.deepEqual(cmdline.slice(1, 1 + written.length), written, `llama-server runs as ${cmdline.join(' ')}`);
  });

  it('publishes the gateway port and no other', async () => {
    const { stdout } = await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project.name}`]);
    const publishing: string[] = [];
    for (const id of stdout.trim().split('\n')) {
      const [service, ports] = (
        await docker([
          'inspect',
          '--format',
          '{{index .Config.Labels "com.docker.compose.service"}}|{{json .HostConfig.PortBindings}}',
          id,
        ])
      ).stdout
        .trim()
        .split('|');
      if (ports !== '{}' && ports !== 'null') publishing.push(service!);
    }
    assert.deepEqual(publishing, ['gateway']);
  });

  it('serves models, chat and streams through the published port to the OpenAI SDK', async () => {
    const models = await openai.models.list();
    assert.ok(
      models.data.some((m) => m.id === 'default'),
      JSON.stringify(models.data.map((m) => m.id)),
    );
    const completion = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'Say hi' }],
      max_tokens: 8,
    });
    assert.equal(completion.usage?.completion_tokens, 8);
    const stream = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'Say hi' }],
      max_tokens: 8,
      stream: true,
    });
    let chunks = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) chunks++;
    assert.ok(chunks > 0, 'the stream carried no content');
  });

  it('runs every service but the databases as a non-root user, hardened, with its volumes writable', async () => {
    for (const service of RUNNING) {
      const id = (await project.containerId(service))!;
      const { stdout } = await docker(['top', id, '-o', 'pid,uid,comm']);
      const uids = stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/)[1]);
      assert.ok(uids.length > 0 && !uids.includes('0'), `${service} runs processes as root:\n${stdout}`);
      const [capDrop, securityOpt, readOnly] = (
        await docker([
          'inspect',
          '--format',
          '{{json .HostConfig.CapDrop}}|{{json .HostConfig.SecurityOpt}}|{{.HostConfig.ReadonlyRootfs}}',
          id,
        ])
      ).stdout
        .trim()
        .split('|');
      assert.match(capDrop!, /ALL/, `${service} keeps capabilities`);
      assert.match(securityOpt!, /no-new-privileges/, `${service} may gain privileges`);
      assert.equal(readOnly, 'true', `${service} has a writable root filesystem`);
    }
    for (const service of NODE_SERVICES) assert.equal(await project.inspect(service, '{{.Config.User}}'), 'node');
    // Healthy on a fresh start means each wrote its volume: Postgres' cluster, Redis' AOF, init's
    // arguments, the worker's models folder (its readiness checks it is writable).
    const worker = (await project.containerId('worker'))!;
    await docker(['exec', worker, 'sh', '-c', 'touch /models/.probe && rm /models/.probe']);
  });

  it('refuses a key removed from the keys file on the host within 2 s', async () => {
    assert.equal((await chat(host.userKey)).status, 200);
    writeKeys(host.keysFile, [`admin:${host.adminKey} scope=admin`]);
    const removed = Date.now();
    await waitFor('the removed key to be refused', async () => (await chat(host.userKey)).status === 401, 2000, 100);
    console.log(`    removed key refused after ${Date.now() - removed} ms`);
    writeKeys(host.keysFile, [`admin:${host.adminKey} scope=admin`, `user:${host.userKey}`]);
    await waitFor('the key to be back', async () => (await chat(host.userKey)).status === 200, 5000, 100);
  });

  it('holds or answers 503 with Retry-After while inference restarts, then serves, with no other restart', async () => {
    const startedAt = async () =>
      Object.fromEntries(
        await Promise.all(
          RUNNING.filter((s) => s !== 'inference').map(async (s) => [
            s,
            await project.inspect(s, '{{.State.StartedAt}} {{.RestartCount}}'),
          ]),
        ),
      );
    const before = await startedAt();
    const seen: { status: number; retryAfter: string | null; ms: number }[] = [];
    let restarting = true;
    const restart = project.run(['restart', 'inference'], 120_000).finally(() => (restarting = false));
    while (restarting) {
      const sent = Date.now();
      const res = await chat(host.userKey);
      await res.arrayBuffer();
      seen.push({ status: res.status, retryAfter: res.headers.get('retry-after'), ms: Date.now() - sent });
      await new Promise((r) => setTimeout(r, 50));
    }
    await restart;
    await waitFor(
      'chat after the restart',
      async () => {
        const res = await chat(host.userKey);
        seen.push({ status: res.status, retryAfter: res.headers.get('retry-after'), ms: 0 });
        return res.status === 200;
      },
      60_000,
      200,
    );
    // With one backend, a request that arrives while it restarts waits for it (ROUTING_WAIT_MS);
    // one that cannot wait so long is refused with 503 and told when to retry.
    const refused = seen.filter((s) => s.status !== 200);
    // A chat with the tiny model takes tens of ms; one held through the restart, hundreds.
    const held = seen.filter((s) => s.status === 200 && s.ms > 250);
    assert.ok(refused.length + held.length > 0, `no request saw the restart: ${JSON.stringify(seen)}`);
    // The one request llama-server was answering when it stopped may be cut (502); every request
    // after that waits for no backend and is told when to retry.
    if (refused[0]?.status === 502) refused.shift();
    for (const r of refused) {
      assert.equal(r.status, 503, JSON.stringify(seen));
      assert.ok(Number(r.retryAfter) > 0, `503 without Retry-After: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(await startedAt(), before, 'another service restarted');
  });

  it('keeps usage rows and models across down and up -d', async () => {
    const usage = async () => {
      const res = await api('/admin/v1/usage', host.adminKey);
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { totals: { requests: number } }).totals.requests;
    };
    const recorded = await waitFor('usage rows', async () => ((await usage()) >= 5 ? usage() : null), 30_000, 500);
    await project.run(['down', '--timeout', '20'], 180_000);
    await project.run(['up', '-d', '--no-build'], 600_000);
    await waitHealthy(project, RUNNING);
    assert.ok((await usage()) >= recorded, 'usage rows were lost');
    const models = await openai.models.list();
    assert.ok(models.data.some((m) => m.id === 'default'));
    assert.equal((await chat(host.userKey)).status, 200, 'the model in the volume serves again');
  });
});
