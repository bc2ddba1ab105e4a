import assert from 'node:assert/strict';
import { scanJson } from '../../src/http/json-body.middleware.js';

const scan = (text: string, maxDepth = 8) => scanJson(Buffer.from(text), maxDepth);

describe('the scan of a JSON body before it is parsed', () => {
  it('counts the top-level members, a repeated or escaped key too, and nothing inside strings or values', () => {
    assert.equal(scan('{"model":"a","messages":[{"role":"user","content":"a: b"}]}').topLevelMembers, 2);
    assert.equal(scan('{"model":"a","mod\\u0065l":"b"}').topLevelMembers, 2);
    assert.equal(scan('{"k\\":":"x:y","n":{"a":1,"b":2}}').topLevelMembers, 2);
  });

  it('finds nesting deeper than the limit', () => {
    assert.equal(scan('[[[1]]]', 2).tooDeep, true);
    assert.equal(scan('{"a":"[[[["}', 2).tooDeep, false);
  });
});
