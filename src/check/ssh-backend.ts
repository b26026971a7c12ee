// The backend of a provisioned cluster (`kube-ipsec check`): real nodes — Vagrant VMs, the VM
// lab's VMs, any machine — reached over OpenSSH (openssh.ts), one master connection each.
// Pods are network namespaces inside their node; strongSwan is its systemd unit. There is no
// machine outside the cluster to play "the internet".
//
// The underlay is captured on the nodes themselves, on the interface that holds each node's
// address, and only what each node sends there (tcpdump -Q out): every packet on the wire
// between nodes is sent by one of them, so their outgoing traffic together is all of it. The
// incoming side would lie: with ESP in the kernel, a decrypted packet is handed to the stack
// again through the interface it arrived on, so a capture there shows every pod packet that
// came through a tunnel a second time, in clear text, although it never crossed the wire so.
import { BOOT_CAPTURE_DIR, startBootCapture } from './boot-capture.ts';
import { masterUp, openMaster, sshArgv, type Master, type OpenSshNode } from './openssh.ts';
import { mergedCapture, remoteBackground, remoteCapture, type RemoteOptions, type RemoteWhere } from './remote.ts';
import { strongswanUnit } from './systemd.ts';
import { NETNS_DIR, type Capture, type ClusterBackend, type CheckTopology } from './target.ts';
import { CheckError } from './errors.ts';
import type { Runner } from '../run.ts';

/** What `connect` learns about a node. */
interface NodeFacts {
  /** The interface holding the node's address: the underlay, where captures run. */
  underlay: string;
  /** The node runs systemd (`/run/systemd/system` exists, as sd_booted(3) asks). */
  systemd: boolean;
}

export interface SshBackend extends ClusterBackend {
  readonly kind: 'ssh';
  connect(nodes?: string[], timeoutMs?: number): Promise<void>;
  reachable(node: string): Promise<boolean>;
  /** The facts of a connected node. */
  facts(node: string): NodeFacts;
  /** Closes every master connection. */
  close(): Promise<void>;
}

export interface SshBackendOptions {
  /** Runs what the checks start through the backend: captures, programs, strongSwan (interruptible). */
  runner: Runner;
  /** Runs the connection's own commands (master checks, facts); default `runner`. */
  control?: Runner;
  topology: CheckTopology;
  ssh: Map<string, OpenSshNode>;
  /** This run's directory on every node: captures, background programs, their PID files. */
  runDir: string;
  /** ipsec.nodeEncryption: node-to-node traffic must be ESP too, so captures keep it. */
  nodeEncryption: boolean;
}

/** What the checks run on every node, and the Debian package that has it. */
export const NODE_TOOLS: Record<string, string> = {
  swanctl: 'strongswan-swanctl',
  tcpdump: 'tcpdump',
  ping: 'iputils-ping',
  socat: 'socat',
  ip: 'iproute2',
  ss: 'iproute2',
  'iptables-restore': 'iptables',
  nsenter: 'util-linux',
  flock: 'util-linux',
  sha256sum: 'coreutils',
  base64: 'coreutils',
  timeout: 'coreutils',
};

/** A capture or background program ends by itself after this long, even if this run dies without stopping it. */
export const REMOTE_LIFETIME_S = 3600;
/** Bytes of each captured packet: IPv4 + ESP/UDP/ICMP headers are all the verdicts read. */
const CAPTURE_SNAPLEN = 160;

/**
 * What an underlay capture keeps on a real node. The underlay also carries the cluster's own
 * traffic between node addresses (kubelet ↔ apiserver, etcd, ssh) and whatever else the
 * machines do; the promise is about pod traffic. So: IPsec (ESP, IKE) and anything from or
 * to the pod range — and, with node encryption, anything between two node addresses, which
 * must then be ESP too.
 */
export function underlayFilter(t: CheckTopology, nodeEncryption: boolean): string {
  const parts = ['ip proto 50', 'udp port 500', 'udp port 4500', `net ${t.podCidr}`];
  if (nodeEncryption) {
    const hosts = (dir: 'src' | 'dst') => t.nodes.map((n) => `${dir} host ${n.ip}`).join(' or ');
    parts.push(`((${hosts('src')}) and (${hosts('dst')}))`);
  }
  return `ip and (${parts.join(' or ')})`;
}

/** `ip -o -4 addr show` → the interface holding `ip` (undefined: none does). */
const safeName = (name: string) => name.replace(/[^A-Za-z0-9_.-]/g, '_');

export function interfaceOf(ipAddrOutput: string, ip: string): string | undefined {
  for (const line of ipAddrOutput.split('\n')) {
    const m = /^\d+:\s+(\S+?)(?:@\S+)?\s+inet (\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (m && m[2] === ip) return m[1];
  }
  return undefined;
}

export function sshBackend(o: SshBackendOptions): SshBackend {
  const t = o.topology;
  const control = o.control ?? o.runner;
  const masters = new Map<string, Master>();
  const facts = new Map<string, NodeFacts>();
  const node = (name: string): OpenSshNode => {
    const n = o.ssh.get(name);
    if (!n) throw new Error(`no node ${name} in the cluster (nodes: ${[...o.ssh.keys()].join(', ')})`);
    return n;
  };
  const onNode = (name: string, argv: readonly string[]) => sshArgv(node(name), argv);
  const pods = new Map(t.nodes.flatMap((n) => n.pods.map((p) => [p.ns, { node: n.name, pod: p.ns }] as const)));
  const nodesByNs = new Map(t.nodes.map((n) => [n.ns, n.name]));
  const where = (ns: string): RemoteWhere => {
    const w = pods.get(ns) ?? (nodesByNs.has(ns) ? { node: nodesByNs.get(ns)! } : undefined);
    if (!w) throw new Error(`${ns} is neither a node nor a test pod of this cluster`);
    return w;
  };
  const remote: RemoteOptions = { dir: o.runDir, lifetimeS: REMOTE_LIFETIME_S, snaplen: CAPTURE_SNAPLEN };
  const factsOf = (name: string): NodeFacts => {
    const f = facts.get(name);
    if (!f) throw new Error(`${name} is not connected`);
    return f;
  };
  const unit = strongswanUnit((name, argv, opts) => o.runner.run(onNode(name, argv), opts));
  const requireSystemd = (name: string) => {
    if (!factsOf(name).systemd) throw new Error(`${name} runs no systemd: its strongSwan cannot be stopped and started as its unit`);
  };
  const filter = underlayFilter(t, o.nodeEncryption);

  const learn = async (name: string) => {
    const n = t.nodes.find((x) => x.name === name)!;
    const tools = Object.keys(NODE_TOOLS).join(' ');
    const script = `ip -o -4 addr show; echo @@; [ -d /run/systemd/system ] && echo systemd; echo @@; for t in ${tools}; do command -v "$t" >/dev/null || echo "$t"; done; true`;
    const r = await control.run(onNode(name, ['sh', '-c', script]), { timeoutMs: 30_000 });
    const [addrs = '', init = '', missing = ''] = r.stdout.split('@@\n');
    const where = `${name} (${node(name).user}@${node(name).host})`;
    const underlay = interfaceOf(addrs, n.ip);
    if (!underlay) throw new CheckError(`${where}: no interface holds ${n.ip}, its address in cluster.yaml: is it the right machine, and provisioned?`);
    const lacking = missing.split('\n').filter(Boolean);
    if (lacking.length) {
      const packages = [...new Set(lacking.map((x) => NODE_TOOLS[x]))].join(' ');
      throw new CheckError(`${where} lacks what the checks run there: ${lacking.join(', ')}\n    fix: apt-get install ${packages} (on ${name})`);
    }
    facts.set(name, { underlay, systemd: init.trim() === 'systemd' });
  };

  const backend: SshBackend = {
    kind: 'ssh',
    get systemd() {
      return t.nodes.every((n) => facts.get(n.name)?.systemd ?? false);
    },
    get noSystemd() {
      const without = t.nodes.filter((n) => !(facts.get(n.name)?.systemd ?? false)).map((n) => n.name);
      return without.length ? `${without.join(', ')} ${without.length === 1 ? 'runs' : 'run'} no systemd (no /run/systemd/system there)` : undefined;
    },
    onNode,
    inNs(ns, argv) {
      const w = where(ns);
      return onNode(w.node, w.pod ? ['nsenter', `--net=${NETNS_DIR}/${w.pod}`, ...argv] : argv);
    },
    async startStrongswan(name) {
      requireSystemd(name);
      await unit.startStrongswan(name);
    },
    async stopStrongswan(name) {
      requireSystemd(name);
      await unit.stopStrongswan(name);
    },
    strongswanState: (name) => unit.strongswanState(name),
    requireUp() {},
    capture: (ns, dev, name, f) => remoteCapture(o.runner, onNode, where(ns), dev, name, f, remote),
    async captureUnderlay(name, f = [], opts = {}): Promise<Capture> {
      const expr = f.length ? `(${filter}) and (${f.join(' ')})` : filter;
      const capture = (n: string) =>
        n === opts.acrossReboot
          ? startBootCapture(o.runner, onNode, n, {
              unit: `kube-ipsec-check-${t.prefix}-${safeName(name)}.service`,
              dir: `${BOOT_CAPTURE_DIR}/${t.prefix}/${safeName(name)}`,
              dev: factsOf(n).underlay,
              filter: expr,
              snaplen: CAPTURE_SNAPLEN,
              deadline: Math.floor(Date.now() / 1000) + REMOTE_LIFETIME_S,
              lifetimeS: REMOTE_LIFETIME_S,
            })
          : remoteCapture(o.runner, onNode, { node: n }, factsOf(n).underlay, name, [expr], { ...remote, direction: 'out' });
      const parts = await Promise.allSettled(t.nodes.map((n) => capture(n.name)));
      const started = parts.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
      const failed = parts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
      if (failed) {
        await Promise.all(started.map((c) => c.stop().catch(() => [])));
        throw failed.reason;
      }
      return mergedCapture(started);
    },
    background: (ns, argv, what) => remoteBackground(o.runner, onNode, where(ns), argv, what, remote),
    reachable: (name) => masterUp(control, node(name)),
    async connect(names = t.nodes.map((n) => n.name), timeoutMs = 30_000) {
      await Promise.all(
        names.map(async (name) => {
          if (!(await masterUp(control, node(name)))) {
            await masters.get(name)?.close();
            masters.delete(name);
            const deadline = Date.now() + timeoutMs;
            for (;;) {
              const m = await openMaster(control, node(name), Math.max(5000, Math.min(30_000, deadline - Date.now())));
              if ('pid' in m) {
                masters.set(name, m);
                break;
              }
              if (Date.now() >= deadline)
                throw new CheckError(
                  `${name}: no ssh connection to ${node(name).user}@${node(name).host}:${node(name).port} within ${Math.round(timeoutMs / 1000)} s: ${m.problem}`,
                );
              await new Promise((r) => setTimeout(r, 1000));
            }
          }
          if (!facts.has(name)) await learn(name);
        }),
      );
    },
    facts: factsOf,
    async close() {
      await Promise.all([...masters.values()].map((m) => m.close()));
      masters.clear();
    },
  };
  return backend;
}
