// `npm run bench`: every suite in one run on this machine, each printed as a markdown table.
// `npm run bench -- <name>...` runs only the named suites.
import { authorizeBench } from './authorize.bench.js';
import { formatTable, type BenchSuite } from './bench.js';
import { gatewayBench } from './gateway.bench.js';
import { modelsBench } from './models.bench.js';
import { pullBench } from './pull.bench.js';
import { usageBench } from './usage.bench.js';

// Each suite lives in its own file beside this one; register it here.
const suites: BenchSuite[] = [authorizeBench, gatewayBench, pullBench, usageBench, modelsBench];

const wanted = process.argv.slice(2);
const selected = wanted.length > 0 ? suites.filter((s) => wanted.includes(s.name)) : suites;
if (selected.length === 0) {
  process.stderr.write(`no bench suites to run (known: ${suites.map((s) => s.name).join(', ') || 'none yet'})\n`);
}
for (const suite of selected) {
  const started = Date.now();
  const rows = await suite.run();
  process.stdout.write(`${formatTable(suite.name, rows)}\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n\n`);
}
