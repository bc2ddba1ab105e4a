import { execFileSync } from 'node:child_process';
import { repoRoot } from '@gguf-gateway/testkit';
import { docker, ensureDockerDaemon, run, runId } from './docker.js';

/** The stand-ins of scripts/make-standin-images, by the names it prints. */
export interface StandinImages {
  DEBIAN: string;
  NODE: string;
  POSTGRES: string;
  REDIS: string;
  PROMETHEUS: string;
  LLAMA_CPP: string;
}

export interface BuiltImage {
  /** This run's own tag: a concurrent run may move the shared one. */
  tag: string;
  seconds: number;
  megabytes: number;
}

export interface TestImages {
  standins: StandinImages;
  services: BuiltImage;
  allInOne: BuiltImage;
}

// The tags the builds land on: stable, so the legacy builder's layer cache (the parents of the
// tagged image) survives to the next run. Each run uses its own tag of the result, removed at exit.
const SERVICES_REPO = 'gguf-gateway-test/services';
const ALL_IN_ONE_REPO = 'gguf-gateway-test/all-in-one';
const RUN_TAG = `run-${runId()}`;
const runTags: string[] = [];
process.on('exit', () => {
  if (runTags.length > 0) execFileSync('docker', ['rmi', ...runTags], { stdio: 'ignore', timeout: 30_000 });
});

async function standins(): Promise<StandinImages> {
  const { stdout } = await run('scripts/make-standin-images', [], { timeoutMs: 15 * 60_000 });
  const images = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => line.split('=') as [string, string]),
  ) as unknown as StandinImages;
  for (const name of ['DEBIAN', 'NODE', 'POSTGRES', 'REDIS', 'PROMETHEUS', 'LLAMA_CPP'] as const) {
    if (!images[name]) throw new Error(`scripts/make-standin-images printed no ${name}=: ${stdout}`);
  }
  return images;
}

async function build(dockerfile: string, repository: string, args: Record<string, string>): Promise<BuiltImage> {
  const tag = `${repository}:${RUN_TAG}`;
  const started = Date.now();
  await run(
    'docker',
    [
      'build',
      '--network',
      'host',
      '-q',
      '-f',
      dockerfile,
      ...Object.entries(args).flatMap(([name, value]) => ['--build-arg', `${name}=${value}`]),
      '-t',
      `${repository}:latest`,
      '-t',
      tag,
      '.',
    ],
    { env: { ...process.env, DOCKER_BUILDKIT: '0' }, cwd: repoRoot, timeoutMs: 15 * 60_000 },
  );
  runTags.push(tag);
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  const bytes = Number((await docker(['image', 'inspect', '--format', '{{.Size}}', tag])).stdout.trim());
  return { tag, seconds, megabytes: Math.round(bytes / 1e6) };
}

let building: Promise<TestImages> | null = null;

/**
 * The daemon, the stand-ins and both images of this checkout, built once per test run (both
 * container specs share them); sizes and build times are printed.
 */
export function testImages(): Promise<TestImages> {
  building ??= (async () => {
    await ensureDockerDaemon();
    const started = Date.now();
    const base = await standins();
    console.log(`    stand-in base images ready in ${Math.round((Date.now() - started) / 1000)} s`);
    const services = await build('Dockerfile', SERVICES_REPO, { NODE_IMAGE: base.NODE });
    console.log(`    services image: ${services.megabytes} MB, built in ${services.seconds} s`);
    const allInOne = await build('Dockerfile.all-in-one', ALL_IN_ONE_REPO, {
      NODE_IMAGE: base.NODE,
      NODE_BINARY_IMAGE: base.NODE,
      LLAMA_CPP_IMAGE: base.LLAMA_CPP,
    });
    console.log(`    all-in-one image: ${allInOne.megabytes} MB, built in ${allInOne.seconds} s`);
    return { standins: base, services, allInOne };
  })();
  return building;
}
