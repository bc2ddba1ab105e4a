import { AuthStub } from './auth-stub.js';
import { FakeOpenAI, type FakeOpenAIOptions } from './fake-openai.js';
import { GatewayHarness, type HarnessOptions } from './gateway-harness.js';

export interface FakeBackendStackOptions extends Omit<HarnessOptions, 'authUrl' | 'backendsYaml'> {
  /** The one key the auth stub knows (key id `user`). */
  user: string;
  /** Models served by the fake alone, as llama.cpp backend `fake` (default: `m`). */
  fakeModels?: string[];
  /** The backends file instead, given the fake's URL. */
  backendsYaml?: (fakeUrl: string) => string;
  fake?: FakeOpenAIOptions;
}

export interface FakeBackendStack {
  fake: FakeOpenAI;
  auth: AuthStub;
  gateway: GatewayHarness;
  stop(): Promise<void>;
}

/** A fake llama.cpp backend, an auth stub that knows one key, and a gateway in front of both. */
export async function startFakeBackendStack(options: FakeBackendStackOptions): Promise<FakeBackendStack> {
  const { user, fakeModels = ['m'], backendsYaml, fake: fakeOptions, ...harness } = options;
  const fake = await FakeOpenAI.start(fakeOptions);
  const auth = await AuthStub.start({ keys: [{ id: 'user', secret: user }] });
  const gateway = await GatewayHarness.start({
    ...harness,
    authUrl: auth.url,
    backendsYaml: backendsYaml
      ? backendsYaml(fake.url)
      : [
          'models:',
          ...fakeModels.map((m) => `  ${m}: { tiers: [[fake]] }`),
          `backends: { fake: { kind: llamacpp, url: "${fake.url}" } }`,
        ].join('\n'),
  });
  return {
    fake,
    auth,
    gateway,
    async stop() {
      await gateway.stop();
      await auth.stop();
      await fake.stop();
    },
  };
}
