import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectGpus, memoryBudgetOf, memoryBudgetSchema, parseNvidiaSmi } from '../../src/index.js';

const fixtures = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));
const fixture = (name: string) => readFileSync(join(fixtures, name), 'utf8');

describe('GPU detection', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'gg-nvsmi-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** An nvidia-smi stand-in that prints a recorded output and exits with the recorded status. */
  function fakeNvidiaSmi(name: string, exitCode: number): string {
    const path = join(dir, `nvidia-smi-${name}`);
    writeFileSync(path, `#!/bin/sh\ncat '${join(fixtures, name)}'\nexit ${exitCode}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  it('reads one 24 GB GPU from a recorded nvidia-smi output', async () => {
    const found = await detectGpus(fakeNvidiaSmi('1x24gb.csv', 0));
    assert.deepEqual(found, {
      gpus: [{ index: 0, name: 'NVIDIA GeForce RTX 4090', memoryTotalMiB: 24564, memoryUsedMiB: 412 }],
      reason: null,
    });
  });

  it('reads two 80 GB GPUs', () => {
    const gpus = parseNvidiaSmi(fixture('2x80gb.csv'));
    assert.deepEqual(
      gpus.map((g) => [g.index, g.name, g.memoryTotalMiB]),
      [
        [0, 'NVIDIA H100 80GB HBM3', 81559],
        [1, 'NVIDIA H100 80GB HBM3', 81559],
      ],
    );
  });

  it('falls back to the CPU with the reason when nvidia-smi is not installed', async () => {
    const found = await detectGpus(join(dir, 'no-such-nvidia-smi'));
    assert.deepEqual(found.gpus, []);
    assert.match(found.reason!, /not found/);
  });

  it('falls back to the CPU and repeats the driver error when nvidia-smi fails', async () => {
    const found = await detectGpus(fakeNvidiaSmi('error.txt', 9));
    assert.deepEqual(found.gpus, []);
    assert.match(found.reason!, /nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate/);
  });

  it('reports no GPU when nvidia-smi lists none', async () => {
    const found = await detectGpus(fakeNvidiaSmi('none.csv', 0));
    assert.deepEqual(found, { gpus: [], reason: 'nvidia-smi lists no GPU' });
  });
});

describe('memory budget', () => {
  it('is the VRAM of every GPU together on a GPU machine', () => {
    const budget = memoryBudgetOf({ gpus: parseNvidiaSmi(fixture('2x80gb.csv')), reason: null }, 64 * 2 ** 30);
    assert.deepEqual(budget, {
      device: 'cuda',
      bytes: 2 * 81559 * 2 ** 20,
      gpus: [
        { name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559 },
        { name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559 },
      ],
    });
    assert.deepEqual(memoryBudgetSchema.parse(JSON.parse(JSON.stringify(budget))), budget);
  });

  it('is the RAM without a GPU', () => {
    const budget = memoryBudgetOf({ gpus: [], reason: 'nvidia-smi lists no GPU' }, 16 * 2 ** 30);
    assert.deepEqual(budget, { device: 'cpu', bytes: 16 * 2 ** 30, gpus: [] });
  });
});
