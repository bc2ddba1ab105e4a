// Mocha root hooks for every suite: the real services must be there, or nothing runs.
import { assertSharedServicesReachable } from '@gguf-gateway/testkit';

export async function mochaGlobalSetup(): Promise<void> {
  await assertSharedServicesReachable();
}
