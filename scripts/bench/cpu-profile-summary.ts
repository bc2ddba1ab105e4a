// Where a process's time went, from a `node --cpu-prof` file: self time per function (the time
// spent in the function itself, not in what it called) and per package or source file, largest first,
// as shares of the busy time (idle left out: under a load generator it is time waiting for others).
// `tsx scripts/bench/cpu-profile-summary.ts <file.cpuprofile> [rows]`.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `express/lib/router/index.js` for a dependency, `gateway/src/app.ts` for our own code. */
function where(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (dependency) return `${dependency[1]}/${dependency[2]}`;
  const ours = /(?:services|packages)\/(.*)$/.exec(path);
  return ours ? ours[1]! : path || '(native)';
}

function nameOf({ functionName, url, lineNumber }: ProfileNode['callFrame']): string {
  return `${functionName || '(anonymous)'} ${where(url)}${url ? `:${lineNumber + 1}` : ''}`;
}

interface Summary {
  /** Self time per function, per file, and total time (itself and what it called) per function of ours. */
  byFunction: Map<string, number>;
  byFile: Map<string, number>;
  inclusive: Map<string, number>;
  total: number;
}

function summarise(profile: CpuProfile): Summary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const summary: Summary = { byFunction: new Map(), byFile: new Map(), inclusive: new Map(), total: 0 };
  const add = (map: Map<string, number>, key: string, micros: number) => map.set(key, (map.get(key) ?? 0) + micros);
  for (const [i, id] of profile.samples.entries()) {
    const micros = profile.timeDeltas[i] ?? 0;
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    add(summary.byFunction, nameOf(frame), micros);
    add(summary.byFile, where(frame.url), micros);
    summary.total += micros;
    // Each function on the sample's stack once, however often it recurses.
    const onStack = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const caller = nodes.get(at)!.callFrame;
      if (/(services|packages)\//.test(caller.url) && !caller.url.includes('node_modules')) onStack.add(nameOf(caller));
    }
    for (const name of onStack) add(summary.inclusive, name, micros);
  }
  return summary;
}

function table(title: string, entries: Map<string, number>, total: number, rows: number): string {
  const sorted = [...entries].sort((a, b) => b[1] - a[1]).slice(0, rows);
  const lines = sorted.map(([name, micros]) => `${((100 * micros) / total).toFixed(1).padStart(5)}%  ${name}`);
  return [`## ${title}`, ...lines].join('\n');
}

const [file, rows] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: cpu-profile-summary.ts <file.cpuprofile> [rows]\n');
  process.exit(2);
}
const { byFunction, byFile, inclusive, total } = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
const limit = Number(rows ?? 40);
process.stdout.write(
  [
    `${(total / 1e6).toFixed(1)} s busy`,
    table('self time by function', byFunction, total, limit),
    table('self time by file', byFile, total, limit),
    table('total time (with callees) of our own functions', inclusive, total, limit),
  ].join('\n\n') + '\n',
);
