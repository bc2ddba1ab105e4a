import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { repoRoot } from '@gguf-gateway/testkit';

const CONFIG = join(repoRoot, 'infra/prometheus/prometheus.yml');

interface ScrapeConfig {
  job_name: string;
  static_configs: { targets: string[] }[];
  authorization?: { credentials_file?: string };
}

describe('infra/prometheus/prometheus.yml', () => {
  const config = parse(readFileSync(CONFIG, 'utf8')) as { scrape_configs: ScrapeConfig[] };

  it('scrapes every service by its compose name and port (the gateway on its health port), and llama.cpp', () => {
    const targets = config.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)).sort();
    assert.deepEqual(targets, [
      'auth:8090',
      'gateway:8081',
      'inference:8180',
      'metrics:8095',
      'orchestrator:8099',
      'worker:8096',
    ]);
  });

  it('passes promtool check config (with the inference key file in place)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-promcfg-'));
    try {
      const keyFile = join(dir, 'inference_api_key');
      writeFileSync(keyFile, 'sk-test-inference-key\n');
      const inference = config.scrape_configs.find((c) => c.job_name === 'inference')!;
      const text = readFileSync(CONFIG, 'utf8').replace(inference.authorization!.credentials_file!, keyFile);
      writeFileSync(join(dir, 'prometheus.yml'), text);
      await promisify(execFile)('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
