// The node half of `npm run stack` (scripts/stack builds first): prepares .stack/ (demo model,
// demo admin key, backends file), runs `orchestrator supervise`, and prints how to call the API.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { env, loadConfigOrExit, z } from '@gguf-gateway/shared';

const config = loadConfigOrExit({
  STACK_DIR: z.string().default('.stack'),
  GATEWAY_PORT: env.port(8080),
  PORT_HEALTH: env.port(8081),
  INFERENCE_PORT: env.port(8180),
  // Not 6379 / 5432: a Redis or Postgres this machine already runs is never touched.
  LOCAL_REDIS_PORT: env.port(16379),
  LOCAL_POSTGRES_PORT: env.port(15432),
  MODEL_PATH: z.string().optional(),
  MODEL_REPO: z.string().optional(),
});

const dir = resolve(config.STACK_DIR);
mkdirSync(join(dir, 'models'), { recursive: true });
// As root, the stack's Postgres runs as the postgres user, which must reach its data directory.
chmodSync(dir, 0o755);

/** The demo admin key: created once, then reused so a pasted curl line keeps working. */
function demoKey(file: string): string {
  if (!existsSync(file)) {
    const secret = `sk-demo-${randomBytes(18).toString('base64url')}`;
    writeFileSync(
      file,
      `# Created by npm run stack. One key per line: key_id:secret [option=value ...]\ndemo:${secret} scope=admin\n`,
      {
        mode: 0o600,
      },
    );
  }
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('demo:'));
  const secret = line?.split(/\s+/)[0]?.split(':')[1];
  if (!secret || secret.startsWith('sha256$')) {
    throw new Error(`${file} has no plaintext demo key: delete the file to get a fresh one`);
  }
  return secret;
}

const keysFile = join(dir, 'api_keys');
const key = demoKey(keysFile);
const backendsFile = join(dir, 'backends.yaml');
writeFileSync(
  backendsFile,
  [
    '# Written by npm run stack on every start: the supervised llama-server on loopback.',
    'models:',
    '  default:',
    '    tiers:',
    '      - [local]',
    'backends:',
    '  local:',
    '    kind: llamacpp',
    `    url: http://127.0.0.1:${config.INFERENCE_PORT}`,
    '',
  ].join('\n'),
);

const modelEnv: Record<string, string> = {};
if (!config.MODEL_PATH && !config.MODEL_REPO) {
  const tiny = join(dir, 'models', 'tiny-llama.gguf');
  if (!existsSync(tiny)) await writeTinyLlama(tiny);
  modelEnv.MODEL_PATH = tiny;
  process.stderr.write(`stack: no MODEL_PATH or MODEL_REPO: serving the tiny demo model (gibberish by design)\n`);
}

// The stack runs its own Redis and Postgres: URLs exported in this shell (for tests, another
// deployment) must not make it use, and migrate, those instead.
const {
  REDIS_URL: _redis,
  REDIS_URL_FILE: _redisFile,
  DATABASE_URL: _database,
  DATABASE_URL_FILE: _databaseFile,
  ...inherited
} = process.env;
const orchestrator = spawn(process.execPath, ['services/orchestrator/dist/main.js', 'supervise'], {
  stdio: 'inherit',
  env: {
    ...inherited,
    ...modelEnv,
    DATA_DIR: dir,
    API_KEYS_FILE: keysFile,
    BACKENDS_FILE: backendsFile,
    GATEWAY_PORT: String(config.GATEWAY_PORT),
    PORT_HEALTH: String(config.PORT_HEALTH),
    INFERENCE_PORT: String(config.INFERENCE_PORT),
    LOCAL_REDIS_PORT: String(config.LOCAL_REDIS_PORT),
    LOCAL_POSTGRES_PORT: String(config.LOCAL_POSTGRES_PORT),
  },
});

const api = `http://127.0.0.1:${config.GATEWAY_PORT}/v1`;
const banner = [
  '',
  'gguf-gateway is ready.',
  `  API URL:  ${api}`,
  `  API key:  ${key}   (admin scope; keys file ${keysFile})`,
  '  Try it:',
  `    curl ${api}/chat/completions -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" -d '{"model":"default","messages":[{"role":"user","content":"Hello"}]}'`,
  '  Ctrl-C stops everything.',
  '',
].join('\n');

const poll = setInterval(() => {
  fetch(`http://127.0.0.1:${config.PORT_HEALTH}/ping`)
    .then((res) => {
      if (res.status !== 200) return;
      clearInterval(poll);
      process.stdout.write(`${banner}\n`);
    })
    .catch(() => undefined);
}, 500);

// A terminal's Ctrl-C reaches the orchestrator too (same process group); it ignores the repeat.
const forward = (signal: NodeJS.Signals) => orchestrator.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
orchestrator.on('exit', (code, signal) => {
  clearInterval(poll);
  process.exit(code ?? (signal ? 1 : 0));
});
