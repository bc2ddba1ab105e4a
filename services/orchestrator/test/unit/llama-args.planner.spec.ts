import assert from 'node:assert/strict';
import type { Gpu } from '@gguf-gateway/shared';
import { planLlamaArgs, presetDefaults, type ModelFacts } from '../../src/gpu/llama-args.planner.js';

// What nvidia-smi reports (packages/shared/test/fixtures/nvidia-smi holds the recorded outputs).
const rtx4090: Gpu[] = [{ index: 0, name: 'NVIDIA GeForce RTX 4090', memoryTotalMiB: 24564, memoryUsedMiB: 412 }];
const twoH100: Gpu[] = [
  { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559, memoryUsedMiB: 0 },
  { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559, memoryUsedMiB: 2 },
];

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

describe('llama-server settings', () => {
  it('runs on the CPU with two slots and all but one core without a GPU', () => {
    const plan = planLlamaArgs(llama8b, [], 8);
    assert.deepEqual(
      { ngl: plan.nGpuLayers, ctx: plan.ctxSize, parallel: plan.parallel, threads: plan.threads },
      { ngl: 0, ctx: 8192, parallel: 2, threads: 7 },
    );
  });

  it('offloads every layer of an 8B model to one 24 GB GPU with four 8k slots', () => {
    const plan = planLlamaArgs(llama8b, rtx4090, 8);
    assert.deepEqual(
      { ngl: plan.nGpuLayers, ctx: plan.ctxSize, parallel: plan.parallel, threads: plan.threads },
      { ngl: 33, ctx: 32768, parallel: 4, threads: 4 },
    );
    assert.equal(plan.tensorSplit, null);
    // Every model gets every layer on the GPU: the gateway loads only the models that fit.
    assert.equal(presetDefaults(plan)['n-gpu-layers'], 'all');
  });

  it('offloads only the layers that fit when a 70B model meets one 24 GB GPU', () => {
    const plan = planLlamaArgs(llama70b, rtx4090, 8);
    assert.ok(plan.nGpuLayers > 20 && plan.nGpuLayers < 81, `got ${plan.nGpuLayers}`);
    assert.equal(plan.threads, 7, 'the CPU does the rest of the layers');
    assert.match(plan.reason, new RegExp(`${plan.nGpuLayers}/81 layers offloaded`));
  });

  it('spreads a 70B model over two 80 GB GPUs by free VRAM', () => {
    const plan = planLlamaArgs(llama70b, twoH100, 16);
    assert.equal(plan.nGpuLayers, 81);
    assert.deepEqual(plan.tensorSplit, [80535, 80533]);
    assert.equal(presetDefaults(plan)['tensor-split'], '80535,80533');
  });

  it('never gives a slot more context than the model was trained on', () => {
    const plan = planLlamaArgs({ ...llama8b, contextLength: 2048 }, [], 4);
    assert.equal(plan.ctxSize, 2048 * plan.parallel);
  });

  it("lets the user's overrides win over what was detected", () => {
    const plan = planLlamaArgs(llama8b, rtx4090, 8, {
      nGpuLayers: 10,
      ctxSize: 4096,
      parallel: 1,
      threads: 2,
    });
    assert.deepEqual(presetDefaults(plan), { 'n-gpu-layers': '10', 'ctx-size': '4096', parallel: '1', threads: '2' });
  });
});
