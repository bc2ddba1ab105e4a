// The node half of `npm run stack` (scripts/stack builds first): checks its ports, prepares .stack/
// (models folder, demo admin key, backends file), runs `orchestrator supervise` with its logs in
// .stack/logs, prints one line per state change and, once ready, how to call the API.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { env, loadConfigOrExit, z } from '@gguf-gateway/shared';
import { takenPorts } from './stack-ports.js';

const config = loadConfigOrExit({
  STACK_DIR: z.string().default('.stack'),
  // Every port supervise listens on or hands out, with the orchestrator's defaults.
  PORT: env.port(8099),
  GATEWAY_PORT: env.port(8080),
  PORT_HEALTH: env.port(8081),
  GATEWAY_HEALTH_PORT: env.port(8082),
  AUTH_PORT: env.port(8090),
  METRICS_PORT: env.port(8095),
  WORKER_PORT: env.port(8096),
  INFERENCE_PORT: env.port(8180),
  // Not 6379 / 5432: a Redis or Postgres this machine already runs is never touched.
  LOCAL_REDIS_PORT: env.port(16379),
  LOCAL_POSTGRES_PORT: env.port(15432),
  /** Every GGUF in it is served, by its file name; default `$STACK_DIR/models`. */
  MODELS_DIR: z.string().optional(),
  MODEL_PATH: z.string().optional(),
  MODEL_REPO: z.string().optional(),
});

const ports = {
  PORT: config.PORT,
  GATEWAY_PORT: config.GATEWAY_PORT,
  PORT_HEALTH: config.PORT_HEALTH,
  GATEWAY_HEALTH_PORT: config.GATEWAY_HEALTH_PORT,
  AUTH_PORT: config.AUTH_PORT,
  METRICS_PORT: config.METRICS_PORT,
  WORKER_PORT: config.WORKER_PORT,
  INFERENCE_PORT: config.INFERENCE_PORT,
  LOCAL_REDIS_PORT: config.LOCAL_REDIS_PORT,
  LOCAL_POSTGRES_PORT: config.LOCAL_POSTGRES_PORT,
};
const taken = await takenPorts(ports);
if (taken.length > 0) {
  process.stderr.write(
    `stack: cannot start, its ports are taken (another stack?):\n  ${taken.join('\n  ')}\n` +
      'Stop that, or give this stack other ports (e.g. GATEWAY_PORT=18080 PORT_HEALTH=18081 ... npm run stack).\n',
  );
  process.exit(1);
}

const dir = resolve(config.STACK_DIR);
const modelsDir = resolve(config.MODELS_DIR ?? join(dir, 'models'));
mkdirSync(dir, { recursive: true });
mkdirSync(modelsDir, { recursive: true });
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
    '# Written by npm run stack on every start. Every GGUF in the models folder is a model already,',
    "# served on demand by the supervised llama-server's router: nothing to route here.",
    'models: {}',
    'backends: {}',
    '',
  ].join('\n'),
);

const ggufs = readdirSync(modelsDir)
  .filter((name) => name.endsWith('.gguf'))
  .sort();
const modelEnv: Record<string, string> = { MODELS_DIR: modelsDir };
if (!config.MODEL_PATH && !config.MODEL_REPO) {
  if (ggufs.length === 0) {
    // An empty folder only: the demo model never lands next to models of the user's own.
    await writeTinyLlama(join(modelsDir, 'tiny-llama.gguf'));
    ggufs.push('tiny-llama.gguf');
    process.stderr.write(`stack: ${modelsDir} is empty: serving the tiny demo model (gibberish by design)\n`);
  }
  modelEnv.MODEL_PATH = join(modelsDir, ggufs.includes('tiny-llama.gguf') ? 'tiny-llama.gguf' : ggufs[0]!);
  process.stderr.write(`stack: default model ${modelEnv.MODEL_PATH} (MODEL_PATH chooses another)\n`);
}
process.stderr.write(
  `stack: serving every GGUF in ${modelsDir} by its file name: ${ggufs.map((f) => f.replace(/\.gguf$/, '')).join(', ') || 'none yet'}\n`,
);

// The stack runs its own Redis and Postgres: URLs exported in this shell (for tests, another
// deployment) must not make it use, and migrate, those instead.
const {
  REDIS_URL: _redis,
  REDIS_URL_FILE: _redisFile,
  DATABASE_URL: _database,
  DATABASE_URL_FILE: _databaseFile,
  ...inherited
} = process.env;
// Every service's log lines go to one file; the terminal keeps the state changes and the banner.
mkdirSync(join(dir, 'logs'), { recursive: true });
const logFile = join(dir, 'logs', 'stack.log');
const log = openSync(logFile, 'a');
process.stderr.write(`stack: service logs in ${logFile}\n`);
const orchestrator = spawn(process.execPath, ['services/orchestrator/dist/main.js', 'supervise'], {
  stdio: ['ignore', log, log],
  env: {
    ...inherited,
    ...modelEnv,
    DATA_DIR: dir,
    API_KEYS_FILE: keysFile,
    BACKENDS_FILE: backendsFile,
    ...Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, String(port)])),
  },
});

const api = `http://127.0.0.1:${config.GATEWAY_PORT}/v1`;
const banner = [
  '',
  'gguf-gateway is ready.',
  `  API URL:  ${api}`,
  `  API key:  ${key}   (admin scope; keys file ${keysFile})`,
  `  Models:   every GGUF in ${modelsDir}, called by its file name (model "default": the default model)`,
  `  Postgres: postgres://postgres@127.0.0.1:${config.LOCAL_POSTGRES_PORT}/postgres`,
  `  Logs:     ${logFile}`,
  '  Try it:',
  `    curl ${api}/chat/completions -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" -d '{"model":"default","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'`,
  '  Ctrl-C stops everything.',
  '',
].join('\n');

interface StackStatus {
  phase: string;
  gates: { name: string; state: string; lastError: string | null }[];
  processes: { name: string; state: string }[];
}

/** One line per change of the orchestrator's /status: each gate and process, then the banner once. */
const seen = new Map<string, string>();
let announced = false;
const poll = setInterval(() => {
  fetch(`http://127.0.0.1:${config.PORT}/status`)
    .then(async (res) => {
      const status = (await res.json()) as StackStatus;
      const states = [
        ...status.gates.map((g) => [`gate ${g.name}`, g.state === 'failed' ? `failed: ${g.lastError}` : g.state]),
        ...status.processes.map((p) => [p.name, p.state]),
      ];
      for (const [what, state] of states) {
        if (state === 'pending' || seen.get(what!) === state) continue;
        seen.set(what!, state!);
        process.stderr.write(`stack: ${what} ${state}\n`);
      }
      if (status.phase === 'ready' && !announced) {
        announced = true;
        process.stdout.write(`${banner}\n`);
      }
    })
    .catch(() => undefined);
}, 500);

// A terminal's Ctrl-C reaches the orchestrator too (same process group); it ignores the repeat.
const forward = (signal: NodeJS.Signals) => orchestrator.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
orchestrator.on('exit', (code, signal) => {
  clearInterval(poll);
  if (code !== 0) {
    const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
    process.stderr.write(`stack: stopped (${code ?? signal}); the end of ${logFile}:\n${tail}\n`);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
