import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFilesRepository } from '../../src/models/model-files.repository.js';

describe('model files repository: what DELETE /admin/v1/models/:name may remove', () => {
  let dir: string;
  let models: string;
  let files: ModelFilesRepository;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gg-model-files-'));
    models = join(dir, 'models');
    mkdirSync(join(models, '.partial'), { recursive: true });
    writeFileSync(join(models, 'alpha.gguf'), 'GGUF');
    writeFileSync(join(dir, 'outside.gguf'), 'GGUF');
    files = new ModelFilesRepository(`${models}/`);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the GGUF files directly in MODELS_DIR and nothing that climbs out of it', () => {
    assert.equal(files.holds(join(models, 'alpha.gguf')), true);
    // A backends-file entry `local: ../outside` names this path.
    assert.equal(files.holds(`${models}/../outside.gguf`), false);
    assert.equal(files.holds(join(dir, 'outside.gguf')), false);
    assert.equal(files.holds(`${models}-other/alpha.gguf`), false);
    // A pull's partial file and anything that is not a model file are never its to remove.
    assert.equal(files.holds(join(models, '.partial', 'alpha.gguf')), false);
    assert.equal(files.holds(join(models, 'notes.txt')), false);
  });

  it('refuses to remove a file outside MODELS_DIR, and leaves it on disk', async () => {
    await assert.rejects(files.remove([`${models}/../outside.gguf`]), /outside MODELS_DIR/);
    assert.ok(existsSync(join(dir, 'outside.gguf')));
    await files.remove([join(models, 'alpha.gguf')]);
    assert.ok(!existsSync(join(models, 'alpha.gguf')));
  });
});
