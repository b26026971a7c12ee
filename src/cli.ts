#!/usr/bin/env node
// kube-ipsec command line: dispatches to one subcommand per job (src/commands.ts).
// Users run it built (bin/kube-ipsec → dist/cli/cli.js). The benchmarks are not part of it:
// `npm run bench` (scripts/bench.ts).
import { COMMANDS, usage } from './commands.ts';

const [name, ...rest] = process.argv.slice(2);
const command = name ? COMMANDS[name] : undefined;
if (!command) {
  process.stderr.write(usage());
  process.exit(name && !['-h', '--help'].includes(name) ? 2 : 0);
}
try {
  process.exitCode = await (await command.load())(rest);
} catch (err) {
  // Expected failures (bad cluster.yaml, unreachable node…) are reported by the
  // subcommand itself; anything reaching here is a bug, so keep the stack.
  console.error(err);
  process.exitCode = 1;
}
