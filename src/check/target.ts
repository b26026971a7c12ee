// What a check needs of the cluster it checks, whatever runs it: the namespace lab (nodes are
// network namespaces on this host), the VM lab (qemu VMs) or any provisioned cluster reached
// over ssh (`kube-ipsec check`: Vagrant VMs, real machines). The checks speak of nodes, pods
// and namespaces by name and run real programs there; a backend turns that into an argv
// (`nsenter` into a node namespace, or a command over ssh) and knows where the underlay can
// be captured. Everything else — what to run, what it means — is the same code for all.
import { durationSeconds } from '../config/validate.ts';
import type { EspMode } from '../plan/mtu.ts';
import type { Runner } from '../run.ts';

/** A running tcpdump a backend started (src/check/capture.ts reads what it saw). */
export interface Capture {
  file: string;
  /** Stops tcpdump and returns the packets, one `tcpdump -nn -t` line each (idempotent). */
  stop(): Promise<string[]>;
}

/** Where `ip netns` keeps named network namespaces (pods' sandboxes), on any node. */
export const NETNS_DIR = '/run/netns';

/** A test pod: a network namespace on its node, attached by the node's installed CNI plugin. */
export interface CheckPod {
  /** Node that runs the pod. */
  node: string;
  /** Pod name as the kubelet would pass it (K8S_POD_NAME). */
  name: string;
  /** Network namespace (CNI_NETNS=/run/netns/<ns>). */
  ns: string;
  containerId: string;
}

export interface CheckNode {
  name: string;
  role: 'master' | 'minion';
  /** Where commands "from the node" run (its network namespace name in the labs; the node's name elsewhere). */
  ns: string;
  ip: string;
  podSubnet: string;
  /** The pod bridge's address. */
  gateway: string;
  /** This node's side of every CHILD_SA (its pod subnet, and its address with ipsec.nodeEncryption). */
  selectors?: string[];
  pods: CheckPod[];
}

export interface CheckTopology {
  /** Begins the name of everything a check creates (namespaces, chains, captures). */
  prefix: string;
  podCidr: string;
  nodeCidr: string;
  /** The ClusterIP range: the checks' emulated services take addresses from its top. */
  serviceCidr: string;
  underlayMtu: number;
  /** The SA lifetimes and rekey margin the mesh was rendered with, in seconds (what the rekey check waits for). */
  lifetimes: SaLifetimes;
  nodes: CheckNode[];
  /** A machine outside the cluster on the node network (the lab's upstream router), if the check has one. */
  upstream?: { ns: string; ip: string; dev: string };
}

export interface SaLifetimes {
  /** ipsec.lifetime: a CHILD_SA's. */
  child: number;
  /** ipsec.ikeLifetime: an IKE_SA's. */
  ike: number;
  /** ipsec.rekeyMargin. */
  margin: number;
}

/** The lifetimes of cluster.yaml's ipsec section ("1h", "40s"…), in seconds. */
export function saLifetimes(ipsec: { lifetime: string; ikeLifetime: string; rekeyMargin: string }): SaLifetimes {
  return { child: durationSeconds(ipsec.lifetime), ike: durationSeconds(ipsec.ikeLifetime), margin: durationSeconds(ipsec.rekeyMargin) };
}

export interface PodState {
  ip: string;
  /** MAC of the pod's eth0, as the plugin reported it. */
  mac?: string;
}

/** A program running in the background on a node or in a namespace, until stopped. */
export interface Background {
  /** Stops it (idempotent); resolves with what it printed, if the backend kept it. */
  stop(): Promise<string>;
}

export interface ClusterBackend {
  readonly kind: 'netns' | 'vm' | 'ssh';
  /** Whether the nodes run systemd with the rendered units (VMs, real nodes): the unit and reboot checks apply. */
  readonly systemd: boolean;
  /** When not every node runs systemd: which ones, and how that was seen. */
  readonly noSystemd?: string;
  /** argv running `argv` on the node as its own services see it (its network, files and /run). */
  onNode(node: string, argv: readonly string[]): string[];
  /** argv running `argv` in a namespace: a node's, a pod's, or the upstream's. */
  inNs(ns: string, argv: readonly string[]): string[];
  /** Starts strongSwan on the node as its unit does, and waits until charon has its connections. */
  startStrongswan(node: string): Promise<void>;
  /** Stops strongSwan on the node as `systemctl stop` would. */
  stopStrongswan(node: string): Promise<void>;
  /** Whether strongSwan runs on the node: its PIDs, and in words for `status` ("running (pids 1 2)", "active"). */
  strongswanState(node: string): Promise<{ pids: number[]; detail: string }>;
  /** Throws, naming the cause, unless every node is there to be used. */
  requireUp(): void;
  /** Opens what reaching the nodes needs (ssh connections); a no-op where nothing does. */
  connect?(nodes?: string[], timeoutMs?: number): Promise<void>;
  /** Whether the node answers at all right now (false while it reboots). */
  reachable?(node: string): Promise<boolean>;
  /** tcpdump of `dev` in namespace `ns`, one `tcpdump -nn -t` line per packet when stopped. */
  capture(ns: string, dev: string, name: string, filter?: string[]): Promise<Capture>;
  /**
   * tcpdump of the underlay: every packet between the nodes (a bridge they share, or each
   * node's own interface). `acrossReboot`: that node reboots meanwhile, and what it sends
   * while it goes down and comes back must be in the capture too.
   */
  captureUnderlay(name: string, filter?: string[], opts?: { acrossReboot?: string }): Promise<Capture>;
  /** Starts `argv` in namespace `ns` in the background (a listener, a flow); resolves once it runs. */
  background(ns: string, argv: readonly string[], what: string): Promise<Background>;
}

/** What runs programs on the nodes. */
export interface ClusterExec {
  runner: Runner;
  backend: ClusterBackend;
}

/** A cluster as the checks see it. */
export interface CheckTarget extends ClusterExec {
  /** How the verdict names it: "lab kil", "cluster kube-ipsec". */
  label: string;
  topology: CheckTopology;
  espMode: EspMode;
  /** The test pods' addresses, by namespace. */
  readonly pods: Record<string, PodState>;
  /** Records new addresses of test pods (made again after a reboot). */
  recordPods(pods: Record<string, PodState>): void;
  /** Re-provisioning through `kube-ipsec provision` (the reprovision check), where the check may do it. */
  provisioning?: {
    /** The cluster.yaml provisioning renders from (the check edits it, and puts it back). */
    configFile: string;
    /** Runs `kube-ipsec provision` with these extra arguments; resolves with its output. */
    provision(extra: string[]): Promise<string>;
  };
}

/** A file as the node itself sees it (undefined if it has none). */
export async function readNodeFile(lab: ClusterExec, node: string, path: string): Promise<string | undefined> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['cat', '--', path]), { allowFail: true, timeoutMs: 20_000 });
  return r.code === 0 ? r.stdout : undefined;
}

/** The nodes that run pods (the minions, in topology order). */
export function nodesWithPods<N extends CheckNode>(t: { nodes: N[] }): N[] {
  return t.nodes.filter((n) => n.pods.length);
}

export function nodeNamed<N extends CheckNode>(t: { nodes: N[] }, name: string): N {
  const n = t.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name} (nodes: ${t.nodes.map((x) => x.name).join(', ')})`);
  return n;
}
