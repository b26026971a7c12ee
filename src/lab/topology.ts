// The lab's topology, derived from the plan (pure): which network namespaces and links
// stand for the cluster's machines and wires, and their names and addresses.
//
//   <p>-wire      the underlay: bridge <p>-br, one port per machine (<p>-n<i>, <p>-up)
//   <p>-upstream  "the internet": the nodes' default gateway, on the node network
//   <p>-<node>    one per node (master included), link <p>-eth holding the node's real IP
//   <p>-<node>-pod<k>  pods, made by the node's CNI plugin (≥ 1 per minion)
//
// Every namespace and every link the lab creates starts with the prefix, and link names fit
// the kernel's 15 characters whatever the node names are (they use indexes, not names).
import { saLifetimes, type CheckNode, type CheckPod, type CheckTopology } from '../check/target.ts';
import type { Plan } from '../plan/plan.ts';
import { cidr, formatIpv4, lastAddress, parseIpv4 } from '../plan/ipv4.ts';

const PREFIX_PATTERN = /^[a-z][a-z0-9]{0,7}$/;
const IFNAMSIZ = 15;

export type LabPod = CheckPod;

export interface LabNode extends CheckNode {
  /** ip with the node network's prefix length, as on the VM's private network. */
  address: string;
  /** The node's underlay link (inside ns). */
  dev: string;
  /** Its peer: the port on the wire bridge (inside the wire namespace). */
  port: string;
}

export interface LabTopology extends CheckTopology {
  wire: { ns: string; bridge: string };
  upstream: { ns: string; ip: string; address: string; dev: string; port: string };
  nodes: LabNode[];
}

export function validatePrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new Error(`lab prefix '${prefix}' must be 1-8 lowercase letters or digits, starting with a letter (it begins every namespace and link name)`);
  }
}

export function labTopology(plan: Plan, prefix: string, podsPerMinion = 2): LabTopology {
  validatePrefix(prefix);
  if (!Number.isInteger(podsPerMinion) || podsPerMinion < 1) throw new Error(`pods per minion must be a positive integer, not ${podsPerMinion}`);
  const net = cidr(plan.network.nodeCidr);
  const upstreamIp = upstreamAddress(plan);
  const link = (suffix: string) => {
    const name = `${prefix}-${suffix}`;
    if (name.length > IFNAMSIZ) throw new Error(`internal: link name ${name} is longer than ${IFNAMSIZ} characters`);
    return name;
  };
  const nodes = plan.nodes.map((n, i): LabNode => {
    const ns = `${prefix}-${n.name}`;
    const pods = n.runsPods
      ? Array.from({ length: podsPerMinion }, (_, k): LabPod => {
          const name = `${n.name}-pod${k + 1}`;
          return { node: n.name, name, ns: `${prefix}-${name}`, containerId: `${prefix}-${name}` };
        })
      : [];
    return {
      name: n.name,
      role: n.role,
      ns,
      ip: n.ip,
      address: `${n.ip}/${net.prefix}`,
      dev: link('eth'),
      port: link(`n${i}`),
      podSubnet: n.podSubnet,
      gateway: n.gateway,
      selectors: n.selectors,
      pods,
    };
  });
  return {
    prefix,
    podCidr: plan.network.podCidr,
    nodeCidr: plan.network.nodeCidr,
    serviceCidr: plan.network.serviceCidr,
    lifetimes: saLifetimes(plan.ipsec),
    underlayMtu: plan.network.underlayMtu,
    wire: { ns: `${prefix}-wire`, bridge: link('br') },
    upstream: { ns: `${prefix}-upstream`, ip: upstreamIp, address: `${upstreamIp}/${net.prefix}`, dev: link('eth'), port: link('up') },
    nodes,
  };
}

/** The upstream router: the last usable address of the node network no node holds. */
export function upstreamAddress(plan: Plan): string {
  const net = cidr(plan.network.nodeCidr);
  const taken = new Set(plan.nodes.map((n) => parseIpv4(n.ip)));
  for (let ip = lastAddress(net) - 1; ip > net.base; ip--) {
    if (!taken.has(ip)) return formatIpv4(ip);
  }
  throw new Error(`the node network ${plan.network.nodeCidr} has no free address for the lab's upstream router`);
}

/** Every namespace of the lab, in creation order (wire and upstream first). */
export function labNamespaces(t: LabTopology): string[] {
  return [t.wire.ns, t.upstream.ns, ...t.nodes.map((n) => n.ns), ...allPods(t).map((p) => p.ns)];
}

export function allPods(t: LabTopology): LabPod[] {
  return t.nodes.flatMap((n) => n.pods);
}

export { nodeNamed } from '../check/target.ts';

/** Does `name` belong to the lab with this prefix (namespaces and links alike)? */
export function ownedBy(prefix: string, name: string): boolean {
  return name.startsWith(`${prefix}-`);
}

/**
 * `ip -batch` lines, run inside the wire namespace, that build the underlay: the bridge and
 * one veth pair per machine whose far end is created directly in that machine's namespace
 * (nothing ever exists in the root namespace, not even for a moment).
 */
export function wireBatch(t: LabTopology): string[] {
  const mtu = t.underlayMtu;
  const lines = [`link add ${t.wire.bridge} mtu ${mtu} type bridge`, `link set ${t.wire.bridge} up`];
  const machines = [...t.nodes.map((n) => ({ ns: n.ns, dev: n.dev, port: n.port })), { ns: t.upstream.ns, dev: t.upstream.dev, port: t.upstream.port }];
  for (const m of machines) {
    lines.push(`link add ${m.port} mtu ${mtu} master ${t.wire.bridge} up type veth peer name ${m.dev} mtu ${mtu} netns ${m.ns}`);
  }
  return lines;
}

/** `ip -batch` lines, run inside a node's namespace: its underlay address and default route. */
export function nodeBatch(t: LabTopology, node: LabNode): string[] {
  return ['link set lo up', `addr add ${node.address} dev ${node.dev}`, `link set ${node.dev} up`, `route add default via ${t.upstream.ip} dev ${node.dev}`];
}

/** `ip -batch` lines for the upstream router (it answers, it does not forward). */
export function upstreamBatch(t: LabTopology): string[] {
  return ['link set lo up', `addr add ${t.upstream.address} dev ${t.upstream.dev}`, `link set ${t.upstream.dev} up`];
}
