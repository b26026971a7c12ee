// The kube-ipsec subcommands: one module each, exporting `main(argv)`, loaded only when used
// (so `render` never pays for ssh2 or the lab). src/cli.ts dispatches; scripts/docs.ts reads
// each one's --help for docs/cli.md.
export type Main = (argv: string[]) => Promise<number>;
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Main> }> = {
  render: { summary: 'cluster.yaml -> out/<node>/… (every file of every node)', load: async () => (await import('./render/cli.ts')).main },
  provision: {
    summary: 'render, then bring nodes to it over ssh (--node NAME, --dry-run, --rollback)',
    load: async () => (await import('./ship/cli.ts')).main,
  },
  smoke: {
    summary: 'check the Kubernetes layer of a running cluster: nodes, pods, pod→pod, DNS, NodePort',
    load: async () => (await import('./smoke/cli.ts')).main,
  },
  check: {
    summary: 'check a provisioned cluster over ssh: tunnels, traffic, captures, MTU, kernel ESP, units (--only for the rest)',
    load: async () => (await import('./check/cli.ts')).main,
  },
  binaries: {
    summary: 'build the pinned Kubernetes, etcd, cri-dockerd and images from their Go modules into binaries.dir',
    load: async () => (await import('./binaries/cli.ts')).main,
  },
  lab: { summary: 'the pod network in network namespaces on this host: up | check | status | down', load: async () => (await import('./lab/cli.ts')).main },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: kube-ipsec <command> [options]\n\n${lines.join('\n')}\n`;
}
