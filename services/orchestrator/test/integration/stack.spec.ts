import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  freePort,
  llamaServerBinary,
  repoRoot,
  waitFor,
  freePorts,
  SUPERVISED_PORT_VARIABLES,
} from '@gguf-gateway/testkit';

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('npm run stack (scripts/stack)', function () {
  this.timeout(180_000);
  let dir: string;
  let ports: Record<string, string>;
  let env: NodeJS.ProcessEnv;
  let output = '';
  let exited: Promise<number | null>;
  let signalGroup: (signal: NodeJS.Signals) => void = () => undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-stack-'));
    // As root, the stack's Postgres runs as the postgres user: it must reach .stack/ inside.
    chmodSync(dir, 0o755);
    ports = await freePorts(SUPERVISED_PORT_VARIABLES);
    env = {
      ...process.env,
      ...ports,
      STACK_DIR: join(dir, '.stack'),
      LLAMA_SERVER_BIN: await llamaServerBinary(),
      LLAMA_CTX_SIZE: '1024',
      LOG_LEVEL: 'warn',
      // Exported in the user's shell for something else: the stack must keep to its own stores.
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/elsewhere`,
    };
    delete env.MODEL_PATH;
    delete env.MODEL_REPO;
    // Its own process group, like a terminal's foreground job: Ctrl-C signals the whole group.
    const stack = spawn(join(repoRoot, 'scripts/stack'), [], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    stack.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    stack.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    exited = new Promise<number | null>((resolve) => stack.once('exit', (code) => resolve(code)));
    signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-stack.pid!, signal);
      } catch {
        // The group is gone already.
      }
    };
    process.once('exit', () => signalGroup('SIGKILL'));
  });

  after(() => {
    signalGroup('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts the supervised stack with the tiny demo model and a demo admin key, logs to a file, and prints a curl line', async () => {
    await Promise.race([
      waitFor('the ready banner', async () => (output.includes('gguf-gateway is ready.') ? true : null), 150_000, 200),
      exited.then((code) => {
        throw new Error(`npm run stack exited with ${code} before it was ready:\n${output.slice(-4000)}`);
      }),
    ]);
    const key = /API key: {2}(sk-demo-\S+)/.exec(output)?.[1];
    assert.ok(key, output);
    assert.match(output, new RegExp(`API URL: {2}http://127\\.0\\.0\\.1:${ports.GATEWAY_PORT}/v1`));
    assert.match(
      output,
      new RegExp(
        `curl http://127\\.0\\.0\\.1:${ports.GATEWAY_PORT}/v1/chat/completions -H "Authorization: Bearer ${key}".*"max_tokens":64`,
      ),
    );
    assert.match(
      output,
      new RegExp(`Postgres: postgres://postgres@127\\.0\\.0\\.1:${ports.LOCAL_POSTGRES_PORT}/postgres`),
    );
    assert.match(output, /is empty: serving the tiny demo model/);
    // Every GGUF in the models folder is served by the router; the default model answers to `default` too.
    const api = (path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${ports.GATEWAY_PORT}/v1${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const listed = (await (await api('/models')).json()) as { data: { id: string }[] };
    const ids = listed.data.map((m) => m.id);
    assert.ok(ids.includes('tiny-llama') && ids.includes('default'), ids.join(', '));
    const chat = await api('/chat/completions', {
      model: 'default',
      max_tokens: 4,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    assert.equal(chat.status, 200, await chat.clone().text());
    // The terminal keeps state changes; the services' own lines are in the log file it names.
    const logFile = join(dir, '.stack', 'logs', 'stack.log');
    assert.match(output, new RegExp(`Logs: +${logFile}`));
    assert.match(output, /stack: gateway ready/);
    assert.doesNotMatch(output, /"level":/);
    assert.match(readFileSync(logFile, 'utf8'), /"msg":/);
    assert.match(readFileSync(join(dir, '.stack', 'api_keys'), 'utf8'), new RegExp(`^demo:${key} scope=admin$`, 'm'));
    assert.equal((await fetch(`http://127.0.0.1:${ports.PORT_HEALTH}/ping`)).status, 200);
    assert.equal(await portOpen(Number(ports.LOCAL_REDIS_PORT)), true, 'its own Redis, on the port it was given');
  });

  it('refuses a second stack on the same ports before printing a banner, naming the port and its holder', async () => {
    const second = spawn(join(repoRoot, 'scripts/stack'), [], {
      env: { ...env, STACK_DIR: join(dir, 'second') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = '';
    second.stdout.on('data', (c: Buffer) => (said += c.toString('utf8')));
    second.stderr.on('data', (c: Buffer) => (said += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => second.once('exit', resolve));
    assert.equal(code, 1, said);
    assert.match(said, new RegExp(`GATEWAY_PORT=${ports.GATEWAY_PORT} is held by pid \\d+ \\(.*gateway`));
    assert.doesNotMatch(said, /is ready|API key/);
  });

  it('stops on Ctrl-C and frees every port', async () => {
    signalGroup('SIGINT');
    assert.equal(await exited, 0, output.slice(-3000));
    for (const port of ['PORT_HEALTH', 'GATEWAY_PORT', 'INFERENCE_PORT', 'LOCAL_REDIS_PORT', 'LOCAL_POSTGRES_PORT']) {
      assert.equal(await portOpen(Number(ports[port])), false, `${port} still open after Ctrl-C`);
    }
  });
});

describe('npm run stack with models of your own', function () {
  this.timeout(180_000);

  it('serves every GGUF in MODELS_DIR by its file name and writes no demo model next to them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-stack-own-'));
    chmodSync(dir, 0o755);
    const models = join(dir, 'my models');
    mkdirSync(models);
    await writeTinyLlama(join(models, 'alpha.gguf'));
    await writeTinyLlama(join(models, 'beta.gguf'));
    const ports = await freePorts(SUPERVISED_PORT_VARIABLES);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...ports,
      STACK_DIR: join(dir, '.stack'),
      MODELS_DIR: models,
      LLAMA_SERVER_BIN: await llamaServerBinary(),
      LLAMA_CTX_SIZE: '1024',
      LOG_LEVEL: 'warn',
    };
    delete env.MODEL_PATH;
    delete env.MODEL_REPO;
    delete env.REDIS_URL;
    delete env.DATABASE_URL;
    const stack = spawn(join(repoRoot, 'scripts/stack'), [], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    stack.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    stack.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => stack.once('exit', resolve));
    try {
      await Promise.race([
        waitFor(
          'the ready banner',
          async () => (output.includes('gguf-gateway is ready.') ? true : null),
          150_000,
          200,
        ),
        exited.then((code) => {
          throw new Error(`npm run stack exited with ${code} before it was ready:\n${output.slice(-4000)}`);
        }),
      ]);
      assert.deepEqual(
        readdirSync(models)
          .filter((f) => f.endsWith('.gguf'))
          .sort(),
        ['alpha.gguf', 'beta.gguf'],
        'no demo model beside them',
      );
      assert.match(output, new RegExp(`default model ${models}/alpha\\.gguf`));
      const key = /API key: {2}(sk-demo-\S+)/.exec(output)![1]!;
      const res = await fetch(`http://127.0.0.1:${ports.GATEWAY_PORT}/v1/models`, {
        headers: { authorization: `Bearer ${key}` },
      });
      const ids = ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
      for (const id of ['alpha', 'beta', 'default']) assert.ok(ids.includes(id), `${id} not in ${ids.join(', ')}`);
    } finally {
      try {
        process.kill(-stack.pid!, 'SIGINT');
      } catch {
        // Gone already.
      }
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
