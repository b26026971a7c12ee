#!/usr/bin/env node
// kube-ipsec command line: one subcommand per job. Each subcommand module exports
// `main(argv)` and is loaded only when used, so `render` never pays for ssh2 or the lab.
// Users run it built (bin/kube-ipsec → dist/cli/cli.js); the benchmarks stay TypeScript
// (they share the tests' helpers) and are loaded through tsx, only by `bench`.
import { readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { packagePath } from './package-root.ts';

type Main = (argv: string[]) => Promise<number>;
const commands: Record<string, { summary: string; load: () => Promise<Main> }> = {
  render: { summary: 'cluster.yaml -> out/<node>/… (every file of every node)', load: async () => (await import('./render/cli.ts')).main },
  provision: { summary: 'render, then bring nodes to it over ssh (--node NAME, --dry-run, --rollback)', load: async () => (await import('./ship/cli.ts')).main },
  check: { summary: 'check a provisioned cluster over ssh: tunnels, traffic, captures, MTU, kernel ESP, units (--only for the rest)', load: async () => (await import('./check/cli.ts')).main },
  lab: { summary: 'the pod network in network namespaces on this host: up | check | status | down', load: async () => (await import('./lab/cli.ts')).main },
  bench: { summary: 'benchmarks printing ratios against reference runs', load: async () => benchMain },
};

/** `bench [suite…]`: every bench/<suite>.ts exports `run(argv)`; no suite = all of them. */
async function benchMain(argv: string[]): Promise<number> {
  const dir = packagePath('bench');
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) {
    console.error(`unknown bench suite(s): ${unknown.join(', ')}; available: ${all.join(', ')}`);
    return 2;
  }
  // Built JavaScript cannot import TypeScript: tsx's loader, for the benchmarks only.
  if (!import.meta.url.endsWith('.ts')) (await import('tsx/esm/api')).register();
  let status = 0;
  for (const suite of wanted.length ? wanted : all) {
    const mod = (await import(pathToFileURL(`${dir}/${suite}.ts`).href)) as { run: Main };
    console.log(`\n== bench ${suite} ==`);
    status ||= await mod.run(argv.filter((a) => a.startsWith('-')));
  }
  return status;
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: kube-ipsec <command> [options]\n\n${lines.join('\n')}\n`;
}

const [name, ...rest] = process.argv.slice(2);
const command = name ? commands[name] : undefined;
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
