// A kube-ipsec cluster run by Vagrant inside a libvirt sandbox, as the end-to-end test and
// the vagrant bench drive it: its cluster.yaml (air-gapped: the binaries npm run binaries
// built, or Debian's etcd alone for the network), vagrant commands from the repository's
// Vagrantfile with this cluster's paths, and root commands on the nodes over the ssh config
// `vagrant ssh-config` prints.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { ikeSas } from '../../src/check/vici.ts';
import { debianPackage } from '../../src/lab/vm/binaries.ts';
import { builtBinaries, DEFAULT_BUILT_DIR, masterKubectl } from '../../src/lab/vm/live.ts';
import { processRunner, type RunResult } from '../../src/run.ts';
import { shellQuote } from '../../src/shell.ts';
import { LOCAL_BOX } from '../../src/vagrant/providers.ts';
import { repoRoot } from '../helpers/cluster.ts';
import type { StampedLine } from './phases.ts';
import type { LibvirtSandbox } from './sandbox.ts';

export interface ClusterNode {
  name: string;
  ip: string;
  /** The node's pod gateway (its bridge address): a pod-range address on the node itself. */
  podGateway: string;
}

export const NODES: ClusterNode[] = [
  { name: 'master', ip: '192.168.10.10', podGateway: '10.240.0.1' },
  { name: 'minion1', ip: '192.168.10.21', podGateway: '10.240.1.1' },
  { name: 'minion2', ip: '192.168.10.22', podGateway: '10.240.2.1' },
];
export const POD_CIDR = '10.240.0.0/16';
/** The libvirt network the Vagrantfile makes for the nodes' private network. */
export const UNDERLAY_NETWORK = 'kube-ipsec-nodes';

export interface VagrantRun {
  code: number | null;
  lines: StampedLine[];
  seconds: number;
  /** The command, its exit and its last lines, for assertion messages. */
  tail: string;
}

export class VagrantCluster {
  private logs = 0;

  constructor(readonly sb: LibvirtSandbox) {
    mkdirSync(this.path('logs'), { recursive: true });
  }

  path(...parts: string[]): string {
    return join(this.sb.dir, ...parts);
  }

  /** The cluster's paths as the Vagrantfile and kube-ipsec read them. */
  vars(): Record<string, string> {
    return {
      KUBE_IPSEC_CONFIG: this.path('cluster.yaml'),
      KUBE_IPSEC_OUT: this.path('out'),
      KUBE_IPSEC_STATE: this.path('state'),
      // This cluster.yaml is not next to the Vagrantfile: kube-ipsec runs `vagrant ssh-config` in its directory.
      VAGRANT_CWD: repoRoot,
      // The Vagrantfile builds the plugin (bun build --compile for the baseline CPU target). The
      // sandbox's HOME is its own and its namespace has no way out: bun takes the target's runtime
      // from the cache `npm run build` filled before, instead of downloading it.
      BUN_INSTALL_CACHE_DIR: process.env.BUN_INSTALL_CACHE_DIR ?? join(homedir(), '.bun', 'install', 'cache'),
    };
  }

  /**
   * cluster.yaml of a master and two minions on kube-ipsec's box. With Kubernetes: what npm run
   * binaries built in ./binaries, sized for a 2-core host under software emulation (the control
   * plane gets both CPUs). Without (the network alone, as the bench's reference runs are):
   * Debian's etcd, everything else absent, 768 MB and one CPU each.
   */
  async writeConfig(o: { kubernetes: boolean }): Promise<void> {
    const node = (n: ClusterNode, i: number, size = '') => `  - { name: ${n.name}, ${i === 0 ? 'role: master, ' : ''}ip: ${n.ip}${size} }`;
    const common = (vagrantSize: string[] = []) => ['ipsec:', '  dpdDelay: 5s', 'vagrant:', ...vagrantSize, `  libvirt: { box: ${LOCAL_BOX} }`];
    let lines: string[];
    if (o.kubernetes) {
      const built = builtBinaries();
      if (!built) throw new Error(`${DEFAULT_BUILT_DIR} holds no build: npm run test:vagrant runs npm run binaries first`);
      lines = [
        'nodes:',
        ...NODES.map((n, i) => node(n, i, i === 0 ? ', memory: 2048, cpus: 2' : ', memory: 1536, cpus: 1')),
        ...common(),
        `binaries: { dir: ${JSON.stringify(built.dir)} }`,
      ];
    } else {
      const etcd = await debianPackage(processRunner, 'etcd-server');
      mkdirSync(this.path('binaries'), { recursive: true });
      copyFileSync(etcd.file, this.path('binaries', basename(etcd.file)));
      lines = [
        'nodes:',
        ...NODES.map((n, i) => node(n, i)),
        ...common(['  memory: 768', '  cpus: 1']),
        'binaries: { dir: ./binaries, allowAbsent: true }',
        'versions:',
        `  etcd: { version: ${etcd.upstream}, archive: { url: ${etcd.url}, checksum: sha256:${etcd.sha256} } }`,
      ];
    }
    writeFileSync(this.path('cluster.yaml'), [...lines, ''].join('\n'));
  }

  /** kubectl on the master as root (the admin credential); `timeoutMs` for the ones that wait (rollout status). */
  kubectl(args: string[], allowFail = false, timeoutMs = 120_000): Promise<RunResult> {
    return this.onNode('master', masterKubectl(args).map(shellQuote).join(' '), allowFail, timeoutMs);
  }

  /** kubectl on the master that must succeed: its output, or an error naming the command and what it said. */
  async kubectlOut(args: string[], timeoutMs = 120_000): Promise<string> {
    const r = await this.kubectl(args, true, timeoutMs);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** A vagrant command in the sandbox, from the repository (the Vagrantfile); its stamped output kept in logs/. */
  async vagrant(args: string[], timeoutMs = 30 * 60_000): Promise<VagrantRun> {
    const r = await this.sb.stream(['vagrant', ...args], { cwd: repoRoot, vars: this.vars(), timeoutMs });
    const text = r.lines.map((l) => `${l.t.toFixed(1).padStart(7)} ${l.line}`);
    writeFileSync(this.path('logs', `${String(++this.logs).padStart(2, '0')}-vagrant-${args[0]}.log`), text.join('\n') + '\n');
    return { ...r, tail: `vagrant ${args.join(' ')} exited ${r.code} after ${r.seconds.toFixed(0)} s:\n${text.slice(-40).join('\n')}` };
  }

  /** Writes ssh_config from `vagrant ssh-config` (after up; the addresses come from DHCP). */
  async sshConfig(): Promise<string> {
    const r = await this.vagrant(['ssh-config']);
    if (r.code !== 0) throw new Error(r.tail);
    const text = r.lines.map((l) => l.line).join('\n') + '\n';
    writeFileSync(this.path('ssh_config'), text);
    return text;
  }

  /** argv of a root shell script on a node (ssh with the config `vagrant ssh-config` wrote). */
  sshArgv(node: string, script: string): string[] {
    return ['ssh', '-F', this.path('ssh_config'), '-o', 'ConnectTimeout=10', node, `sudo bash -c ${shellQuote(script)}`];
  }

  onNode(node: string, script: string, allowFail = false, timeoutMs = 120_000): Promise<RunResult> {
    return this.sb.run(this.sshArgv(node, script), { allowFail, timeoutMs });
  }

  /** Peers (by name) with which `node` has an ESTABLISHED IKE_SA and an INSTALLED CHILD_SA. */
  async tunnelsOf(node: string): Promise<string[]> {
    const r = await this.onNode(node, 'swanctl --list-sas --pretty', true);
    if (r.code !== 0) return [];
    const sas = ikeSas(r.stdout);
    return NODES.filter(
      (n) => n.name !== node && sas.some((s) => s.remoteHost === n.ip && s.state === 'ESTABLISHED' && s.children.some((c) => c.state === 'INSTALLED')),
    ).map((n) => n.name);
  }

  async everyPairUp(): Promise<boolean> {
    return (await Promise.all(NODES.map(async (n) => (await this.tunnelsOf(n.name)).length === NODES.length - 1))).every(Boolean);
  }
}
