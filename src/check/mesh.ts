// The IPsec mesh as the running charons see it. A node pair is up when each end has at
// least one ESTABLISHED IKE_SA with the other and an INSTALLED CHILD_SA carrying exactly the
// planned selectors, and whole ("single") when that is exactly one of each at both ends, as
// one initiator per pair makes it at steady state. When a pair is down, the loaded
// connections of both ends say why; when it holds more, who initiated them does.
import type { ClusterExec } from './target.ts';
import type { CheckTarget } from './target.ts';
import type { CheckNode, CheckTopology } from './target.ts';
import { conns, ikeSas, type Conn, type IkeSa } from './vici.ts';

export interface NodeSas {
  sas: IkeSa[];
  conns?: Conn[];
  /** swanctl failed (charon not running, socket missing…). */
  error?: string;
}

interface EndStatus {
  /** ESTABLISHED IKE_SAs with the peer. */
  ike: number;
  /** INSTALLED CHILD_SAs with the planned selectors. */
  child: number;
  /** Of the IKE_SAs, those this end initiated. */
  initiated: number;
}

export interface PairStatus {
  a: string;
  b: string;
  up: boolean;
  /** Up with exactly one IKE_SA and one CHILD_SA at each end. */
  single: boolean;
  ends: Record<string, EndStatus>;
  /** Why the pair is not up, pointing at the cause. */
  problem?: string;
}

async function swanctl(lab: ClusterExec, node: string, what: '--list-sas' | '--list-conns') {
  return lab.runner.run(lab.backend.onNode(node, ['swanctl', what, '--pretty']), { allowFail: true, timeoutMs: 20_000 });
}

export async function readNodeSas(lab: ClusterExec, node: string, withConns = false): Promise<NodeSas> {
  const [sas, cs] = await Promise.all([swanctl(lab, node, '--list-sas'), withConns ? swanctl(lab, node, '--list-conns') : undefined]);
  if (sas.code !== 0) return { sas: [], error: (sas.stderr || sas.stdout).trim().split('\n').pop() ?? `exit ${sas.code}` };
  return { sas: ikeSas(sas.stdout), ...(cs && cs.code === 0 && { conns: conns(cs.stdout) }) };
}

export async function meshStatus(lab: CheckTarget, withConns = false): Promise<PairStatus[]> {
  const read = await Promise.all(lab.topology.nodes.map(async (n) => [n.name, await readNodeSas(lab, n.name, withConns)] as const));
  return evaluateMesh(lab.topology, new Map(read));
}

const sameSet = (x: string[], y: string[]) => x.length === y.length && x.every((v) => y.includes(v));

/** What a node's side of its CHILD_SAs carries (nodes recorded before selectors: the pod subnet). */
export const selectorsOf = (n: CheckNode): string[] => n.selectors ?? [n.podSubnet];

/** "pod subnet is 10.240.2.0/24", or "selectors are 10.240.2.0/24,192.168.10.22/32" with ipsec.nodeEncryption. */
const selectorWords = (n: CheckNode): string => {
  const s = selectorsOf(n);
  return s.length === 1 ? `pod subnet is ${s[0]}` : `selectors are ${s.join(',')}`;
};

function endStatus(sas: IkeSa[], local: CheckNode, peer: CheckNode): EndStatus {
  const established = sas.filter((s) => s.remoteHost === peer.ip && s.state === 'ESTABLISHED');
  const child = established
    .flatMap((s) => s.children)
    .filter((c) => c.state === 'INSTALLED' && sameSet(c.localTs, selectorsOf(local)) && sameSet(c.remoteTs, selectorsOf(peer))).length;
  return { ike: established.length, child, initiated: established.filter((s) => s.initiator).length };
}

/** Every node pair once (topology order), with both ends' view of it. */
export function evaluateMesh(t: CheckTopology, byNode: Map<string, NodeSas>): PairStatus[] {
  const out: PairStatus[] = [];
  for (let i = 0; i < t.nodes.length; i++) {
    for (let j = i + 1; j < t.nodes.length; j++) {
      const [a, b] = [t.nodes[i]!, t.nodes[j]!];
      const [sa, sb] = [byNode.get(a.name) ?? { sas: [] }, byNode.get(b.name) ?? { sas: [] }];
      const ends = { [a.name]: endStatus(sa.sas, a, b), [b.name]: endStatus(sb.sas, b, a) };
      const up = Object.values(ends).every((e) => e.ike > 0 && e.child > 0);
      const single = up && Object.values(ends).every((e) => e.ike === 1 && e.child === 1);
      const problem = up ? (single ? undefined : duplicates(a, b, ends)) : diagnosePair(a, b, sa, sb);
      out.push({ a: a.name, b: b.name, up, single, ends, ...(problem && { problem }) });
    }
  }
  return out;
}

/** Why a pair holds more than one SA pair, from who initiated them. */
function duplicates(a: CheckNode, b: CheckNode, ends: Record<string, EndStatus>): string {
  const [ea, eb] = [ends[a.name]!, ends[b.name]!];
  const counts = `${a.name} holds ${ea.ike} IKE_SAs / ${ea.child} CHILD_SAs with ${b.name}, ${b.name} ${eb.ike} / ${eb.child}`;
  const both = ea.initiated > 0 && eb.initiated > 0;
  const why = both
    ? `both ends initiated one (${a.name} ${ea.initiated}, ${b.name} ${eb.initiated}): auto=start at both ends of the pair in ipsec.conf, or a re-authentication (reauth=yes) that left the old IKE_SA in place`
    : `${ea.initiated ? a.name : b.name} set up more than one: a reload, restart or re-authentication that initiated again while the old SAs lived on`;
  return `${a.name} ↔ ${b.name}: ${counts}, one of each expected: ${why}`;
}

/** Why a pair is not up: a dead charon, a connection that disagrees with the plan, or the IKE/CHILD state. */
function diagnosePair(a: CheckNode, b: CheckNode, sa: NodeSas, sb: NodeSas): string {
  const pair = `${a.name} ↔ ${b.name}`;
  for (const [node, s] of [
    [a, sa],
    [b, sb],
  ] as const) {
    if (s.error) return `${pair}: charon on ${node.name} does not answer (${s.error}): strongSwan is not running there`;
  }
  for (const [local, peer, s] of [
    [a, b, sa],
    [b, a, sb],
  ] as const) {
    const selector = connProblem(local, peer, s.conns);
    if (selector) return `${pair}: ${selector}`;
  }
  const states = (s: NodeSas, peer: CheckNode) => [...new Set(s.sas.filter((x) => x.remoteHost === peer.ip).map((x) => x.state))].join('/') || 'no IKE_SA';
  const ikeUp = (s: NodeSas, peer: CheckNode) => s.sas.some((x) => x.remoteHost === peer.ip && x.state === 'ESTABLISHED');
  if (!ikeUp(sa, b) || !ikeUp(sb, a)) {
    return `${pair}: IKE_SA not established (${a.name}: ${states(sa, b)}, ${b.name}: ${states(sb, a)}): the peers do not reach each other on UDP 500/4500 or do not accept each other's authentication`;
  }
  const children = [...sa.sas, ...sb.sas].filter((x) => x.remoteHost === a.ip || x.remoteHost === b.ip).flatMap((x) => x.children);
  const odd = children.find((c) => c.state === 'INSTALLED');
  if (odd)
    return `${pair}: CHILD_SA carries ${odd.localTs.join(',')} === ${odd.remoteTs.join(',')}, the plan says ${selectorsOf(a).join(',')} === ${selectorsOf(b).join(',')}`;
  return `${pair}: IKE_SA established but no CHILD_SA installed: the two ends' traffic selectors (leftsubnet/rightsubnet) do not match`;
}

/** A connection of `local` whose selectors disagree with the two pod subnets. */
export function connProblem(local: CheckNode, peer: CheckNode, loaded: Conn[] | undefined): string | undefined {
  if (!loaded) return undefined;
  const conn = loaded.find((c) => c.remoteAddrs.includes(peer.ip));
  if (!conn) return `${local.name} has no connection to ${peer.name} (${peer.ip}) in its /etc/ipsec.conf`;
  for (const child of conn.children) {
    if (!sameSet(child.remoteTs, selectorsOf(peer))) {
      return `${local.name}'s conn ${conn.name} expects ${peer.name}'s pods at ${child.remoteTs.join(',')} (rightsubnet in ${local.name}'s /etc/ipsec.conf), but ${peer.name}'s ${selectorWords(peer)}: the CHILD_SA is refused (TS_UNACCEPTABLE)`;
    }
    if (!sameSet(child.localTs, selectorsOf(local))) {
      return `${local.name}'s conn ${conn.name} offers ${child.localTs.join(',')} as its own pods (leftsubnet in ${local.name}'s /etc/ipsec.conf), but ${local.name}'s ${selectorWords(local)}: the CHILD_SA is refused (TS_UNACCEPTABLE)`;
    }
  }
  return undefined;
}
