import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectGpus, parseNvidiaSmi } from '../../src/gpu/gpu.detector.js';
import { llamaServerArgs, planLlamaArgs, type ModelFacts } from '../../src/gpu/llama-args.planner.js';

const fixtures = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));
const fixture = (name: string) => readFileSync(join(fixtures, name), 'utf8');

// Real models' GGUF metadata: Llama 3.1 8B and 70B Instruct at Q4_K_M.
const llama8b: ModelFacts = {
  path: '/models/llama-8b.gguf',
  fileBytes: 4_920_739_232,
  blockCount: 32,
  contextLength: 131072,
  embeddingLength: 4096,
  headCount: 32,
  headCountKv: 8,
};
const llama70b: ModelFacts = {
  path: '/models/llama-70b.gguf',
  fileBytes: 42_520_395_584,
  blockCount: 80,
  contextLength: 131072,
  embeddingLength: 8192,
  headCount: 64,
  headCountKv: 8,
};

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

describe('llama-server settings', () => {
  it('runs on the CPU with two slots and all but one core without a GPU', () => {
    const plan = planLlamaArgs(llama8b, [], 8);
    assert.deepEqual(
      { ngl: plan.nGpuLayers, ctx: plan.ctxSize, parallel: plan.parallel, threads: plan.threads },
      { ngl: 0, ctx: 8192, parallel: 2, threads: 7 },
    );
  });

  it('offloads every layer of an 8B model to one 24 GB GPU with four 8k slots', () => {
    const plan = planLlamaArgs(llama8b, parseNvidiaSmi(fixture('1x24gb.csv')), 8);
    assert.deepEqual(
      { ngl: plan.nGpuLayers, ctx: plan.ctxSize, parallel: plan.parallel, threads: plan.threads },
      { ngl: 33, ctx: 32768, parallel: 4, threads: 4 },
    );
    assert.equal(plan.tensorSplit, null);
  });

  it('offloads only the layers that fit when a 70B model meets one 24 GB GPU', () => {
    const plan = planLlamaArgs(llama70b, parseNvidiaSmi(fixture('1x24gb.csv')), 8);
    assert.ok(plan.nGpuLayers > 20 && plan.nGpuLayers < 81, `got ${plan.nGpuLayers}`);
    assert.equal(plan.threads, 7, 'the CPU does the rest of the layers');
    assert.match(plan.reason, new RegExp(`${plan.nGpuLayers}/81 layers offloaded`));
  });

  it('spreads a 70B model over two 80 GB GPUs by free VRAM', () => {
    const plan = planLlamaArgs(llama70b, parseNvidiaSmi(fixture('2x80gb.csv')), 16);
    assert.equal(plan.nGpuLayers, 81);
    assert.deepEqual(plan.tensorSplit, [80535, 80533]);
    assert.deepEqual(llamaServerArgs(llama70b.path, plan).slice(-2), ['--tensor-split', '80535,80533']);
  });

  it('never gives a slot more context than the model was trained on', () => {
    const plan = planLlamaArgs({ ...llama8b, contextLength: 2048 }, [], 4);
    assert.equal(plan.ctxSize, 2048 * plan.parallel);
  });

  it("lets the user's overrides win over what was detected", () => {
    const plan = planLlamaArgs(llama8b, parseNvidiaSmi(fixture('1x24gb.csv')), 8, {
      nGpuLayers: 10,
      ctxSize: 4096,
      parallel: 1,
      threads: 2,
    });
    assert.deepEqual(llamaServerArgs('/m.gguf', plan), [
      '--model',
      '/m.gguf',
      '--n-gpu-layers',
      '10',
      '--ctx-size',
      '4096',
      '--parallel',
      '1',
      '--threads',
      '2',
    ]);
  });
});
