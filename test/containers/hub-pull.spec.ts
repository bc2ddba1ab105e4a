import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { FakeHub, freePort } from '@gguf-gateway/testkit';
import { join } from 'node:path';
import { ComposeProject, docker, run, runId, type CommandFailed } from './docker.js';
import { makeHostFiles, waitHealthy, type HostFiles } from './fixtures.js';
import { testImages } from './images.js';

const REPO = 'test-org/tiny-GGUF';
const FILE = 'tiny-q8.gguf';

/**
 * A first start whose default model is on the hub (a local stand-in that answers on the Docker
 * bridge): init logs the worker's progress and the stack serves it; with the hub gone, init fails
 * with the reason once the pull's attempts are spent.
 */
describe('containers: the default model pulled from the hub on first start', function () {
  this.timeout(20 * 60_000);
  let project: ComposeProject;
  let host: HostFiles;
  let hub: FakeHub;

  before(async () => {
    const images = await testImages();
    // The host's address on Docker's default bridge (docker0): containers reach it, nothing else
    // does. Read with ip(8): an idle bridge is down, and Node lists only interfaces that are up.
    const bridgeName = (
      await docker(['network', 'inspect', 'bridge', '--format', '{{index .Options "com.docker.network.bridge.name"}}'])
    ).stdout.trim();
    const bridge = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
      (await run('ip', ['-4', '-o', 'addr', 'show', 'dev', bridgeName])).stdout,
    )?.[1];
    assert.ok(bridge, `no IPv4 address on the Docker bridge ${bridgeName}`);
    hub = await FakeHub.start({ host: bridge });
    const port = await freePort();
    host = makeHostFiles(images, port);
    await writeTinyLlama(join(host.dir, FILE));
    await hub.addFile(REPO, FILE, { path: join(host.dir, FILE) });
    project = new ComposeProject(`gghub${runId()}`, {
      ...host.env,
      MODEL_REPO: REPO,
      MODEL_FILE: FILE,
      HF_ENDPOINT: hub.url,
      // The fake hub's CDN speaks plain HTTP.
      PULL_ALLOW_HTTP: 'true',
      PULL_ALLOWED_HOSTS: `${hub.url.replace('http://', '')},${hub.cdnHost}`,
    });
  });

  after(async () => {
    if (project) await project.down();
    await hub?.stop();
    if (host) rmSync(host.dir, { recursive: true, force: true });
  });

  it('logs the pull progress in init and serves the pulled model', async () => {
    await project.run(['up', '-d', '--no-build'], 600_000);
    await waitHealthy(project, ['postgres', 'redis', 'auth', 'metrics', 'worker', 'inference', 'gateway']);
    const init = await project.logs('init');
    assert.match(init, /default model missing: pull enqueued for the worker/);
    assert.match(init, /model pull (downloading|verifying|done)/);
    assert.equal(await project.inspect('init', '{{.State.ExitCode}}'), '0');
    assert.ok(hub.cdnRequests().some((r) => r.url.includes(FILE)));
    const port = Number(host.env.GATEWAY_PUBLISH!.split(':')[1]);
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: host.userKey, maxRetries: 0 });
    const completion = await openai.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
    });
    assert.equal(completion.usage?.completion_tokens, 4);
  });

  it("fails init naming the reason, with each attempt's failure logged, when the hub is unreachable", async () => {
    await hub.stop();
    const started = Date.now();
    const failed = await project.run(['run', '--rm', '-e', 'MODEL_FILE=not-pulled-yet.gguf', 'init'], 300_000).then(
      () => assert.fail('init should fail'),
      (err: CommandFailed) => err,
    );
    const said = `${failed.stdout}\n${failed.stderr}`;
    assert.match(said, /model pull attempt 1 of \d+ failed: .*(ECONNREFUSED|fetch failed|connect)/i);
    assert.match(
      said,
      /gate model failed: pull of test-org\/tiny-GGUF\/not-pulled-yet\.gguf failed after \d+ attempts/,
    );
    console.log(`    init gave up after ${Math.round((Date.now() - started) / 1000)} s`);
  });
});
