import assert from 'node:assert/strict';
import { validateBackendsFile, validateKeysFile } from '../../src/gates/file-validators.js';

describe('keys file validation', () => {
  it('accepts the seed format, options, hashed secrets, comments and blank lines', () => {
    const report = validateKeysFile(
      [
        '# team keys',
        'alice:sk-alice-0123456789',
        'bob:sk-bob-0123456789:60',
        'ci:sk-ci-0123456789:30:2030-01-01T00:00:00Z',
        '',
        `ops:sha256$${'a'.repeat(64)} scope=admin rpm=10 models=llama-*|qwen-* expires=2031-01-01`,
      ].join('\n'),
    );
    assert.deepEqual(report, { entries: 4, problems: [] });
  });

  it('names the line and the key of each problem but never the secret', () => {
    const report = validateKeysFile(
      ['good:sk-good-0123456789', 'nosecret:', 'slow:sk-slow-secret:fast', 'opt:sk-opt-secret colour=blue'].join('\n'),
    );
    assert.deepEqual(report.problems, [
      { line: 2, message: 'key nosecret has no secret' },
      { line: 3, message: 'key slow: rpm must be a whole number' },
      { line: 4, message: 'key opt: unknown option colour' },
    ]);
    assert.ok(!JSON.stringify(report).includes('sk-slow-secret'));
  });

  it('refuses a file without any key', () => {
    assert.deepEqual(validateKeysFile('# nothing yet\n\n').problems, [{ line: null, message: 'no key in the file' }]);
  });
});

describe('backends file validation', () => {
  it('accepts a YAML mapping', () => {
    const report = validateBackendsFile('models:\n  llama:\n    - url: http://inference:8180\n');
    assert.deepEqual(report, { entries: 1, problems: [] });
  });

  it('names the line of a YAML syntax error', () => {
    const report = validateBackendsFile('models:\n  llama: [unclosed\n');
    assert.equal(report.problems.length > 0, true);
    assert.equal(typeof report.problems[0]!.line, 'number');
  });

  it('refuses an empty file and a list at the top level', () => {
    assert.match(validateBackendsFile('').problems[0]!.message, /mapping/);
    assert.match(validateBackendsFile('- a\n- b\n').problems[0]!.message, /mapping/);
  });
});
