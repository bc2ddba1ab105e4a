import { fileURLToPath } from 'node:url';
import { loadConfig, z } from '@gguf-gateway/shared';

/** Where the tests find the shared services of this machine; override to point elsewhere. */
export const testSettings = loadConfig({
  TEST_REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  TEST_POSTGRES_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/postgres'),
  LLAMA_SERVER_BIN: z.string().optional(),
});

/** The repository root (testkit lives at packages/testkit/dist). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
