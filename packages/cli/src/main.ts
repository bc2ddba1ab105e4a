#!/usr/bin/env node
// The gguf-gateway command line: one entry per command in the table below, each in commands/.
import { keysCommand } from './commands/keys.js';
import { modelsCommand } from './commands/models.js';
import { pullCommand } from './commands/pull.js';

const commands: Record<string, { summary: string; run: (args: string[]) => Promise<number> }> = {
  keys: keysCommand,
  pull: pullCommand,
  models: modelsCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    const list = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
    process.stderr.write(`usage: gguf-gateway <command> [options]\n${list.join('\n') || '  (no commands yet)'}\n`);
    return name ? 2 : 0;
  }
  return command.run(args);
}

process.exitCode = await main(process.argv.slice(2));
