import assert from 'node:assert/strict';
import { formatKeyLine, hashSecret, parseExpiry, parseKeysFile, sha256Hex } from '@gguf-gateway/shared';

const SECRET = 'sk-test-0123456789abcdef';
const OTHER = 'sk-test-fedcba9876543210';

function onlyError(text: string): { line: number; message: string } {
  const { keys, errors } = parseKeysFile(text);
  assert.equal(keys.length, 0, `expected no key from ${JSON.stringify(text)}`);
  assert.equal(errors.length, 1);
  return errors[0]!;
}

describe('keys file', () => {
  it('reads the seed llama-gguf-inference format unchanged', () => {
    const { keys, errors } = parseKeysFile(`alice:${SECRET}\nbob:${OTHER}:60\n`);
    assert.deepEqual(errors, []);
    assert.equal(keys[0]!.id, 'alice');
    assert.equal(keys[0]!.secretSha256, sha256Hex(SECRET));
    assert.equal(keys[0]!.limits.rpm, null);
    assert.equal(keys[1]!.limits.rpm, 60);
  });

  it('reads positional expiry with colons in its time', () => {
    const { keys, errors } = parseKeysFile(`alice:${SECRET}:60:2030-01-02T03:04:05+02:00`);
    assert.deepEqual(errors, []);
    assert.equal(keys[0]!.expiresAt!.toISOString(), '2030-01-02T01:04:05.000Z');
  });

  it('reads every option, hashed secrets, comments and blank lines', () => {
    const text = [
      '# team keys',
      '',
      `ops:${hashSecret(SECRET)} rpm=10 tpm=5000 concurrency=2 daily_tokens=100000 budget_usd_day=1.5 budget_usd_month=20 models=llama-*|qwen2 scope=admin expires=2030-06-01`,
    ].join('\n');
    const { keys, errors } = parseKeysFile(text);
    assert.deepEqual(errors, []);
    const [ops] = keys;
    assert.equal(ops!.line, 3);
    assert.equal(ops!.secretSha256, sha256Hex(SECRET));
    assert.deepEqual(ops!.limits, {
      rpm: 10,
      tpm: 5000,
      concurrency: 2,
      dailyTokens: 100000,
      budgetUsdDay: 1.5,
      budgetUsdMonth: 20,
    });
    assert.deepEqual(ops!.models, ['llama-*', 'qwen2']);
    assert.ok(ops!.modelMatchers.some((m) => m.test('llama-3.1-8b')));
    assert.deepEqual(ops!.scopes, ['admin']);
  });

  describe('reports a malformed line by number and never its secret', () => {
    const cases: [string, string, RegExp][] = [
      ['no colon', SECRET, /expected 'key_id:secret', found no ':'/],
      ['a bad id', `-alice:${SECRET}`, /key id must be/],
      ['an id with a space', `ali ce:${SECRET}`, /key id must be|found no ':'/],
      ['a short secret', 'alice:sk-short-123', /^secret is shorter than 16 characters/],
      ['a bad sha256 secret', 'alice:sha256$abc', /not 64 hex digits/],
      ['a bad positional rpm', `alice:${SECRET}:sixty`, /the rpm field after the secret must be a whole number/],
      ['a zero rpm option', `alice:${SECRET} rpm=0`, /rpm must be a whole number of at least 1/],
      ['a bad date', `alice:${SECRET} expires=next-week`, /expires 'next-week' is not an ISO-8601 date/],
      ['an impossible date', `alice:${SECRET} expires=2030-02-30`, /is not a real date/],
      [
        'an impossible offset',
        `alice:${SECRET} expires=2020-01-01T00:00:00+99:99`,
        /expires '2020-01-01T00:00:00\+99:99' has an offset that is not a real one/,
      ],
      ['an offset with 60 minutes', `alice:${SECRET} expires=2030-01-01T00:00:00-0560`, /not a real one/],
      ['an impossible positional offset', `alice:${SECRET}:60:2020-01-01T00:00:00+99:99`, /the expires field/],
      ['an unknown option', `alice:${SECRET} colour=blue`, /unknown option 'colour'/],
      ['an option without a value', `alice:${SECRET} tpm`, /option 1 after the secret is not name=value/],
      ['an option given twice', `alice:${SECRET}:60 rpm=30`, /rpm is given twice/],
      ['an unknown scope', `alice:${SECRET} scope=root`, /scope 'root' is not one of: admin/],
      ['a bad budget', `alice:${SECRET} budget_usd_day=$5`, /budget_usd_day must be an amount in USD/],
    ];
    for (const [what, line, message] of cases) {
      it(`with ${what}`, () => {
        const error = onlyError(`# header\n${line}`);
        assert.equal(error.line, 2);
        assert.match(error.message, message);
        assert.ok(!error.message.includes(SECRET), 'the secret must not appear in the message');
      });
    }
  });

  describe('never echoes a secret that landed where the format expects something else', () => {
    const cases: [string, string, string][] = [
      ['a line without its key id', 'sk-live-0123456789abcdef:60', 'sk-live-0123456789abcdef'],
      ['a secret with a space', 'carol:0123456789abcdef 0123456789xyz', '0123456789xyz'],
      ['a secret with a colon', 'dave:0123456789abcdefgh:ij-secret-tail', 'ij-secret-tail'],
      // An unknown option is named only when it looks like one (a short lowercase word, a typo of
      // rpm say), never when it reads like generated secret text.
      ['a secret with a space and an equals sign', 'erin:0123456789abcdef kX9-tail=part', 'kX9-tail'],
    ];
    for (const [what, line, secretPart] of cases) {
      it(`with ${what}`, () => {
        const error = onlyError(line);
        assert.ok(!JSON.stringify(error).includes(secretPart), JSON.stringify(error));
      });
    }
  });

  it('refuses a duplicate id and a duplicate secret but keeps the first line', () => {
    const { keys, errors } = parseKeysFile(
      `alice:${SECRET}\nalice:${OTHER}\nbob:${hashSecret(SECRET)}\ncarol:${OTHER}`,
    );
    assert.deepEqual(
      keys.map((k) => k.id),
      ['alice', 'carol'],
    );
    assert.deepEqual(errors, [
      { line: 2, message: "key 'alice': duplicate key id (first on line 1)", keyId: 'alice' },
      { line: 3, message: "key 'bob': same secret as key 'alice' on line 1", keyId: 'bob' },
    ]);
    assert.ok(!JSON.stringify(errors).includes(SECRET) && !JSON.stringify(errors).includes(sha256Hex(SECRET)));
  });

  it('still loads the good lines around a bad one', () => {
    const { keys, errors } = parseKeysFile(`alice:${SECRET}\nbroken\nbob:${OTHER}`);
    assert.deepEqual(
      keys.map((k) => k.id),
      ['alice', 'bob'],
    );
    assert.equal(errors[0]!.line, 2);
  });

  describe('expiry', () => {
    it('honours the offset of an expiry written with one', () => {
      assert.equal(parseExpiry('2030-01-01T00:00:00+05:30').toISOString(), '2029-12-31T18:30:00.000Z');
      assert.equal(parseExpiry('2030-01-01T00:00:00-0800').toISOString(), '2030-01-01T08:00:00.000Z');
      assert.equal(parseExpiry('2030-01-01T00:00:00Z').toISOString(), '2030-01-01T00:00:00.000Z');
      assert.equal(parseExpiry('2030-01-01T00:00:00+14:00').toISOString(), '2029-12-31T10:00:00.000Z');
      assert.equal(parseExpiry('2030-01-01T00:00:00-12:00').toISOString(), '2030-01-01T12:00:00.000Z');
    });

    it('reads an expiry without an offset as UTC', () => {
      assert.equal(parseExpiry('2030-01-01T12:30').toISOString(), '2030-01-01T12:30:00.000Z');
      assert.equal(parseExpiry('2030-01-01T12:30:15.250').toISOString(), '2030-01-01T12:30:15.250Z');
    });

    it('keeps a key with a bare date valid through that whole UTC day', () => {
      assert.equal(parseExpiry('2030-01-01').toISOString(), '2030-01-02T00:00:00.000Z');
    });

    it('puts two writings of the same instant in different zones at the same time', () => {
      const { keys } = parseKeysFile(
        `a:${SECRET} expires=2030-03-01T09:00:00+09:00\nb:${OTHER} expires=2030-03-01T00:00:00Z`,
      );
      assert.equal(keys[0]!.expiresAt!.getTime(), keys[1]!.expiresAt!.getTime());
    });
  });

  it('formats a line that parses back to the same key, with the secret hashed', () => {
    const line = formatKeyLine({
      id: 'ci',
      secret: SECRET,
      limits: { rpm: 5, dailyTokens: 1000, budgetUsdMonth: 2.5 },
      models: ['tiny*'],
      scopes: ['admin'],
      expiresAt: new Date('2030-01-01T00:00:00Z'),
    });
    assert.ok(!line.includes(SECRET));
    assert.equal(
      line,
      `ci:${hashSecret(SECRET)} rpm=5 daily_tokens=1000 budget_usd_month=2.5 models=tiny* scope=admin expires=2030-01-01T00:00:00.000Z`,
    );
    const { keys, errors } = parseKeysFile(line);
    assert.deepEqual(errors, []);
    assert.equal(keys[0]!.secretSha256, sha256Hex(SECRET));
    assert.equal(keys[0]!.limits.budgetUsdMonth, 2.5);
  });

  it('reads routes= as the inference routes a key may call, and refuses an unknown route name', () => {
    const { keys, errors } = parseKeysFile(
      [`a:${SECRET} routes=chat|embeddings`, `b:${hashSecret('another-secret-0123456')} routes=chat|nope`].join('\n'),
    );
    assert.deepEqual(keys[0]!.routes, ['chat', 'embeddings']);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /routes 'chat\|nope' is not a list of: chat, completions/);
    assert.equal(
      formatKeyLine({ id: 'a', secret: SECRET, routes: ['messages'] }),
      `a:${hashSecret(SECRET)} routes=messages`,
    );
  });
});
