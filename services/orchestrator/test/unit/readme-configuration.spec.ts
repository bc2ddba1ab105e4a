import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { z } from '@gguf-gateway/shared';
import { authConfigSchema } from '../../../auth/src/config.js';
import { gatewayConfigSchema } from '../../../gateway/src/config.js';
import { metricsConfigSchema } from '../../../metrics/src/config.js';
import { workerConfigSchema } from '../../../worker/src/config.js';
import { orchestratorConfigSchema } from '../../src/config.js';

const SCHEMAS: Record<string, z.ZodRawShape> = {
  gateway: gatewayConfigSchema,
  auth: authConfigSchema,
  metrics: metricsConfigSchema,
  worker: workerConfigSchema,
  orchestrator: orchestratorConfigSchema,
};

/** The README's "Configuration" table: each row's variables and the services it names. */
function configurationRows(): { variables: string[]; services: string }[] {
  const readme = readFileSync(fileURLToPath(new URL('../../../../README.md', import.meta.url)), 'utf8');
  const start = readme.indexOf('## Configuration');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const [variables = '', services = ''] = line.split('|').slice(1);
      return { variables: [...variables.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!), services };
    });
}

describe('README configuration reference', () => {
  const rows = configurationRows();

  for (const [service, schema] of Object.entries(SCHEMAS)) {
    it(`documents every variable the ${service} reads`, () => {
      const missing = Object.keys(schema).filter(
        (name) =>
          !rows.some(
            (row) => row.variables.includes(name) && (row.services.includes(service) || row.services.includes('all')),
          ),
      );
      assert.deepEqual(missing, [], `add rows to the README's Configuration table for the ${service}`);
    });
  }

  it('documents no variable that no service reads', () => {
    const read = new Set(Object.values(SCHEMAS).flatMap((schema) => Object.keys(schema)));
    const unknown = rows
      .filter((row) => Object.keys(SCHEMAS).some((service) => row.services.includes(service)))
      .flatMap((row) => row.variables)
      .filter((name) => !read.has(name));
    assert.deepEqual(unknown, []);
  });
});
