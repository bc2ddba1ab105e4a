import assert from 'node:assert/strict';
import { validateBackendsFile, validateKeysFile } from '../../src/gates/file-validators.js';

describe('keys file validation (the auth service parser)', () => {
  it('accepts the seed format, options, hashed secrets, comments and blank lines', () => {
    const report = validateKeysFile(
      [
        '# team keys',
        'alice:sk-alice-0123456789abcdef',
        'bob:sk-bob-0123456789abcdef:60',
        '',
        `ops:sha256$${'a'.repeat(64)} scope=admin rpm=10 models=llama-*|qwen-* expires=2031-01-01`,
      ].join('\n'),
    );
    assert.deepEqual(report, { entries: 3, problems: [] });
  });

  it('names the line and the key of each problem but never the secret', () => {
    const report = validateKeysFile(
      ['good:sk-good-0123456789abcdef', 'short:sk-tiny', 'opt:sk-opt-secret-0123456789 colour=blue'].join('\n'),
    );
    assert.equal(report.entries, 1);
    assert.deepEqual(
      report.problems.map((p) => p.line),
      [2, 3],
    );
    assert.match(report.problems[0]!.message, /short/);
    assert.match(report.problems[1]!.message, /colour/);
    assert.ok(!JSON.stringify(report).includes('sk-tiny'));
    assert.ok(!JSON.stringify(report).includes('sk-opt-secret'));
  });

  it('refuses a file without any key', () => {
    assert.deepEqual(validateKeysFile('# nothing yet\n\n').problems, [{ line: null, message: 'no key in the file' }]);
  });
});

describe('backends file validation (the gateway parser)', () => {
  it('accepts a file the gateway serves', () => {
    const report = validateBackendsFile(
      'models:\n  tiny:\n    tiers: [[local]]\nbackends:\n  local:\n    kind: llamacpp\n    url: http://inference:8180\n',
    );
    assert.deepEqual(report, { entries: 1, problems: [] });
  });

  it('names a model that points at an unknown backend', () => {
    const report = validateBackendsFile('models:\n  tiny:\n    tiers: [[nowhere]]\nbackends: {}\n');
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0]!.message, /line 3: .*unknown backend "nowhere"/);
  });

  it('refuses broken YAML and an empty file', () => {
    assert.match(validateBackendsFile('models:\n  tiny: [unclosed\n').problems[0]!.message, /not valid YAML/);
    assert.equal(validateBackendsFile('').problems.length > 0, true);
  });
});
