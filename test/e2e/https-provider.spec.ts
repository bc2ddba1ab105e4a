// A remote provider is reached over HTTPS, as every hosted API is. The gateway verifies the provider's
// certificate (here one trusted through NODE_EXTRA_CA_CERTS, as an operator with a private CA does),
// keeps its TLS connections alive across requests, and never sends its key to a provider whose
// certificate it cannot verify.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import {
  deleteRedisPrefix,
  freePort,
  startAuthProcess,
  startGatewayProcess,
  stopProcess,
  testRedisPrefix,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import { FakeOpenAI } from '../../services/gateway/test/support/fake-openai.js';

const USER_KEY = 'sk-user-https-provider-0123456789';
const PROVIDER_KEY = 'provider-key-over-tls-0123456789';
/** What the gateway that does not trust the certificate holds as the provider's key. */
const KEY_OF_THE_DISTRUSTING = 'provider-key-never-sent-0123456789';

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function selfSignedCertificate(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

describe('a remote provider over HTTPS', function () {
  this.timeout(60_000);
  const prefix = testRedisPrefix();
  let dir: string;
  let provider: FakeOpenAI;
  let auth: ManagedProcess;
  const gateways: ManagedProcess[] = [];
  let trusting: string;
  let distrusting: string;

  async function gateway(backendsFile: string, authUrl: string, env: Record<string, string>): Promise<string> {
    const [port, healthPort] = [await freePort(), await freePort()];
    gateways.push(
      startGatewayProcess({
        port,
        healthPort,
        redisPrefix: prefix,
        authUrl,
        backendsFile,
        env: { PROVIDER_KEY, ...env },
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    await waitFor('gateway /healthz', async () => (await fetch(`${url}/healthz`)).status === 200, 15_000, 50);
    return url;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-https-provider-'));
    const { key, cert, certFile } = selfSignedCertificate(dir);
    provider = await FakeOpenAI.start({ tls: { key, cert }, apiKey: PROVIDER_KEY });
    const keysFile = join(dir, 'api_keys');
    writeFileSync(keysFile, `user:${USER_KEY}\n`, { mode: 0o600 });
    const authPort = await freePort();
    auth = startAuthProcess({ port: authPort, redisPrefix: prefix, keysFile });
    const authUrl = `http://127.0.0.1:${authPort}`;
    await waitFor('auth /readyz', async () => (await fetch(`${authUrl}/readyz`)).status === 200, 15_000);
    const backendsFile = join(dir, 'backends.yaml');
    writeFileSync(
      backendsFile,
      `models: { remote: { tiers: [[provider]] } }\n` +
        `backends: { provider: { kind: openai, url: "${provider.url}", apiKeyEnv: PROVIDER_KEY } }\n`,
    );
    [trusting, distrusting] = await Promise.all([
      gateway(backendsFile, authUrl, { NODE_EXTRA_CA_CERTS: certFile }),
      gateway(backendsFile, authUrl, { PROVIDER_KEY: KEY_OF_THE_DISTRUSTING }),
    ]);
  });

  after(async () => {
    for (const process of gateways) await stopProcess(process);
    if (auth) await stopProcess(auth);
    await provider?.stop();
    await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers through the provider, streamed and not, on one kept-alive TLS connection', async () => {
    const client = new OpenAI({ baseURL: `${trusting}/v1`, apiKey: USER_KEY, maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: 'hi' }];
    const before = provider.connections;
    for (let i = 0; i < 3; i++) {
      const answer = await client.chat.completions.create({ model: 'remote', messages, max_tokens: 3 });
      assert.equal(answer.model, 'remote');
      assert.ok(answer.choices[0]?.message.content);
      const stream = await client.chat.completions.create({ model: 'remote', messages, max_tokens: 3, stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      assert.ok(text.length > 0, 'the stream carried text');
    }
    const sent = provider.requests.filter((r) => r.path === '/v1/chat/completions');
    assert.equal(sent.length, 6);
    assert.ok(
      sent.every((r) => r.headers.authorization === `Bearer ${PROVIDER_KEY}`),
      "the gateway's key, over TLS",
    );
    assert.equal(provider.connections - before, 1, 'one TLS connection, kept alive across the six requests');
  });

  it('never sends its key to a provider whose certificate it cannot verify, and says so in its own words', async () => {
    const res = await fetch(`${distrusting}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'remote', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }),
    });
    const text = await res.text();
    // Answered at once: a certificate that does not verify is a setting to fix, not a restart to wait for.
    assert.equal(res.status, 502, text);
    assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'backend_tls_failed');
    assert.doesNotMatch(
      text,
      /self.signed|DEPTH_ZERO|127\.0\.0\.1/i,
      'no TLS error text or address reaches the client',
    );
    const seen = provider.requests.map((r) => r.headers.authorization ?? '');
    assert.ok(
      !seen.some((header) => header.includes(KEY_OF_THE_DISTRUSTING)),
      'no request, probe or poll carried its key to the unverified provider',
    );
  });
});
