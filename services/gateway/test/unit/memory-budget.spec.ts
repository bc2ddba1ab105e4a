import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { readMemoryBudget } from '../../src/models/memory-budget.js';

describe('models memory budget', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-budget-'));
  const logs = new LogCapture();
  const logger = createLogger({ service: 'gateway', destination: logs });

  it('takes MODELS_MEMORY_BYTES over the file', () => {
    const file = join(dir, 'budget.json');
    writeFileSync(file, JSON.stringify({ device: 'cuda', bytes: 80e9, gpus: [] }));
    assert.deepEqual(readMemoryBudget({ MODELS_MEMORY_BYTES: 1000, MODELS_MEMORY_FILE: file }, logger), {
      device: 'cpu',
      bytes: 1000,
      source: 'MODELS_MEMORY_BYTES',
    });
  });

  it("reads the orchestrator's memory-budget.json: VRAM on a GPU machine", () => {
    const file = join(dir, 'gpu.json');
    writeFileSync(
      file,
      JSON.stringify({ device: 'cuda', bytes: 85_899_345_920, gpus: [{ name: 'H100', memoryTotalMiB: 81920 }] }),
    );
    assert.deepEqual(readMemoryBudget({ MODELS_MEMORY_FILE: file }, logger), {
      device: 'cuda',
      bytes: 85_899_345_920,
      source: file,
    });
  });

  it("falls back to this machine's RAM with a warning when nothing says, or the file is unreadable", () => {
    assert.equal(readMemoryBudget({}, logger).bytes, totalmem());
    assert.equal(readMemoryBudget({ MODELS_MEMORY_FILE: join(dir, 'missing.json') }, logger).bytes, totalmem());
    assert.match(logs.text(), /neither MODELS_MEMORY_BYTES nor MODELS_MEMORY_FILE is set/);
    assert.match(logs.text(), /MODELS_MEMORY_FILE is not readable: using RAM/);
  });
});
