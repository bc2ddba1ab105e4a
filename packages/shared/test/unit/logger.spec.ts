import assert from 'node:assert/strict';
import { createLogger, maskSecrets, requestContext } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';

const SECRET = 'sk-live-4f9a8b7c6d5e4f3a2b1c';

describe('logger', () => {
  it('never writes an API key from a request header', () => {
    const capture = new LogCapture();
    const logger = createLogger({ service: 'test', destination: capture });
    logger.info({ req: { headers: { authorization: `Bearer ${SECRET}`, 'x-api-key': SECRET } } }, 'request');
    logger.info({ headers: { authorization: `Bearer ${SECRET}` } }, 'upstream');
    assert.equal(capture.lines.length, 2);
    assert.ok(!capture.text().includes(SECRET), capture.text());
    assert.match(capture.text(), /\[REDACTED\]/);
  });

  it('masks keys and HF tokens inside messages, fields and errors', () => {
    const capture = new LogCapture();
    const logger = createLogger({ service: 'test', destination: capture });
    logger.warn(`upstream said: invalid key Bearer ${SECRET}`);
    logger.info({ apiKey: SECRET, hfToken: 'hf_abcdefghijklmnop', source: { token: 'x' } }, 'pull');
    logger.error({ err: new Error(`fetch https://hub/?token=hf_abcdefghijklmnop failed for ${SECRET}`) }, 'failed');
    const text = capture.text();
    assert.ok(!text.includes(SECRET), text);
    assert.ok(!text.includes('hf_abcdefghijklmnop'), text);
  });

  it('masks the signature and credential of a presigned URL inside messages and errors', () => {
    const capture = new LogCapture();
    const logger = createLogger({ service: 'test', destination: capture });
    const url = 'https://b.s3.amazonaws.com/m.gguf?X-Amz-Credential=AKIA-cred-1&X-Amz-Signature=f00dfeed&sig=azure-sas';
    logger.warn(`download of ${url} interrupted`);
    logger.error({ err: new Error(`GET ${url} failed`) }, 'failed');
    const text = capture.text();
    for (const secret of ['AKIA-cred-1', 'f00dfeed', 'azure-sas']) assert.ok(!text.includes(secret), text);
    assert.match(text, /X-Amz-Signature=\[REDACTED\]/);
  });

  it('stamps every line with the service and the current request id', () => {
    const capture = new LogCapture();
    const logger = createLogger({ service: 'gateway', destination: capture });
    requestContext.run({ requestId: 'req-123' }, () => logger.info('inside'));
    logger.info('outside');
    const [inside, outside] = capture.records();
    assert.equal(inside?.service, 'gateway');
    assert.equal(inside?.requestId, 'req-123');
    assert.equal(outside?.requestId, undefined);
  });

  it('logs a string or undefined given as err instead of throwing', () => {
    const capture = new LogCapture();
    const logger = createLogger({ service: 'test', destination: capture });
    logger.warn({ err: `refused Bearer ${SECRET}` }, 'string reason');
    logger.warn({ err: undefined }, 'no reason');
    assert.equal(capture.lines.length, 2);
    assert.ok(!capture.text().includes(SECRET));
    assert.equal(capture.records()[0]?.err, 'refused Bearer [REDACTED]');
  });

  it('maskSecrets leaves ordinary text alone', () => {
    assert.equal(maskSecrets('model tiny-llama answered in 12 ms'), 'model tiny-llama answered in 12 ms');
  });
});
