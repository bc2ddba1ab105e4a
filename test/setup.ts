// Mocha root hooks for every suite: the real services and programs must be there, or nothing runs.
import { assertSharedServicesReachable, assertTestToolsInstalled } from '@gguf-gateway/testkit';

export async function mochaGlobalSetup(): Promise<void> {
  assertTestToolsInstalled();
  await assertSharedServicesReachable();
}
