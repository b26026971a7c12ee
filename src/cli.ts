#!/usr/bin/env node
// kube-ipsec command line: one subcommand per job. Each subcommand module exports
// `main(argv)` and is loaded only when used, so `render` never pays for ssh2 or the lab.
// Users run it built (bin/kube-ipsec → dist/cli/cli.js). The benchmarks are not part of it:
// `npm run bench` (scripts/bench.ts).

type Main = (argv: string[]) => Promise<number>;
const commands: Record<string, { summary: string; load: () => Promise<Main> }> = {
  render: { summary: 'cluster.yaml -> out/<node>/… (every file of every node)', load: async () => (await import('./render/cli.ts')).main },
  provision: { summary: 'render, then bring nodes to it over ssh (--node NAME, --dry-run, --rollback)', load: async () => (await import('./ship/cli.ts')).main },
  smoke: { summary: 'check the Kubernetes layer of a running cluster: nodes, pods, pod→pod, DNS, NodePort', load: async () => (await import('./smoke/cli.ts')).main },
  check: { summary: 'check a provisioned cluster over ssh: tunnels, traffic, captures, MTU, kernel ESP, units (--only for the rest)', load: async () => (await import('./check/cli.ts')).main },
  lab: { summary: 'the pod network in network namespaces on this host: up | check | status | down', load: async () => (await import('./lab/cli.ts')).main },
};

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
