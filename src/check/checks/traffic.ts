// Every pod pings every pod on every other node, every node pings every remote pod — with
// tcpdump on the underlay bridge meanwhile: it must see that traffic only as ESP (and IKE),
// never a clear-text pod packet.
import { classifyCapture, captureUnderlay, clearTextProblems, type CaptureSummary } from '../capture.ts';
import { nodesWithPods, type CheckTarget, type CheckTopology } from '../target.ts';
import type { PairStatus } from '../mesh.ts';
import { mapLimit, type Reachability } from '../probe.ts';
import { formatMatrix, type CheckResult } from '../report.ts';
import type { EspMode } from '../../plan/mtu.ts';

export interface PingProbe {
  fromNode: string;
  /** Matrix row: "minion1 (node)" or "minion1 pods". */
  row: string;
  /** Namespace the ping runs in. */
  ns: string;
  source: string;
  toNode: string;
  dst: string;
}

const nodeRow = (node: string) => `${node} (node)`;
const podsRow = (node: string) => `${node} pods`;

/** Every pod → every pod of the other nodes, every node → every remote pod. */
export function pingProbes(t: CheckTopology, podIps: Record<string, { ip: string }>): PingProbe[] {
  const targets = t.nodes.flatMap((n) => n.pods.map((p) => ({ node: n.name, ip: podIps[p.ns]?.ip ?? '' })));
  const probes: PingProbe[] = [];
  for (const n of t.nodes) {
    const remote = targets.filter((x) => x.node !== n.name && x.ip);
    for (const dst of remote) probes.push({ fromNode: n.name, row: nodeRow(n.name), ns: n.ns, source: n.name, toNode: dst.node, dst: dst.ip });
    for (const p of n.pods) {
      for (const dst of remote) probes.push({ fromNode: n.name, row: podsRow(n.name), ns: p.ns, source: p.name, toNode: dst.node, dst: dst.ip });
    }
  }
  return probes;
}

/** Who holds an address, for messages ("minion1-pod2", "minion1", "upstream"). */
export function addressBook(lab: CheckTarget): Map<string, string> {
  const book = new Map<string, string>(lab.topology.upstream ? [[lab.topology.upstream.ip, 'upstream']] : []);
  for (const n of lab.topology.nodes) {
    book.set(n.ip, n.name);
    book.set(n.gateway, `${n.name} (bridge)`);
    for (const p of n.pods) {
      const ip = lab.pods[p.ns]?.ip;
      if (ip) book.set(ip, p.name);
    }
  }
  return book;
}

export async function checkTraffic(lab: CheckTarget, pairs: PairStatus[], reach: Reachability): Promise<CheckResult[]> {
  const t = lab.topology;
  const probes = pingProbes(t, lab.pods);
  const capture = await captureUnderlay(lab, 'mesh');
  let ok: boolean[] = [];
  let lines: string[] = [];
  try {
    // Unanswered pings mostly wait: more of them than cores is fine.
    ok = await mapLimit(probes, 16, (p) => reach.reaches(p.ns, p.dst));
  } finally {
    lines = await capture.stop();
  }
  return [pingsResult(t, probes, ok, pairs), captureResult(classifyCapture(lines, t.podCidr), probes.length, addressBook(lab), lab.espMode)];
}

export function pingsResult(t: CheckTopology, probes: PingProbe[], ok: boolean[], pairs: PairStatus[]): CheckResult {
  const rows = t.nodes.flatMap((n) => [nodeRow(n.name), ...(n.pods.length ? [podsRow(n.name)] : [])]);
  const cols = nodesWithPods(t).map((n) => n.name);
  const cell = (row: string, col: string) => {
    const hits = probes.map((p, i) => ({ p, ok: ok[i]! })).filter((x) => x.p.row === row && x.p.toNode === col);
    return hits.length ? `${hits.filter((x) => x.ok).length}/${hits.length}` : '·';
  };
  const problems: string[] = [];
  for (const row of rows) {
    for (const col of cols) {
      const hits = probes.map((p, i) => ({ p, ok: ok[i]! })).filter((x) => x.p.row === row && x.p.toNode === col);
      const failed = hits.filter((x) => !x.ok);
      if (!failed.length) continue;
      const from = hits[0]!.p.fromNode;
      const pair = pairs.find((p) => (p.a === from && p.b === col) || (p.a === col && p.b === from));
      const why =
        pair && !pair.up ? ` (the tunnel ${pair.a} ↔ ${pair.b} is not up: see tunnels)` : pair ? ' although the tunnel is up (see capture and masquerade)' : '';
      const examples = failed
        .slice(0, 2)
        .map((x) => `${x.p.source} → ${x.p.dst}`)
        .join(', ');
      problems.push(`${row} → ${col} pods: ${failed.length}/${hits.length} pings unanswered, e.g. ${examples}${why}`);
    }
  }
  const passed = ok.filter(Boolean).length;
  return {
    name: 'pings',
    ok: passed === probes.length && probes.length > 0,
    summary: `${passed}/${probes.length} pings answered (every pod → every remote pod, every node → every remote pod)`,
    lines: formatMatrix('replies (row → column pods)', rows, cols, cell),
    problems: probes.length ? problems : ['no pings to send: the lab has no pods on two different nodes'],
    values: { pings: probes.length, answered: passed },
  };
}

/**
 * What the underlay showed: no clear-text pod packet, ESP for the pods' traffic — raw ESP
 * (protocol 50) when the kernel does ESP (no NAT between the nodes: UDP 4500 would mean
 * NAT-T or userspace ESP), ESP in UDP 4500 with strongSwan's userspace ESP.
 */
export function captureResult(s: CaptureSummary, pings: number, book: Map<string, string>, espMode: EspMode = 'userspace'): CheckResult {
  const problems = clearTextProblems(s.clearPod, book);
  // Other IPv4 is the nodes' own traffic (the kubelet to the API server, ssh, DNS): outside
  // what ipsec.nodeEncryption off encrypts, counted in the summary and not a problem.
  if (!s.esp) problems.push(`no ESP on the underlay during ${pings} pings: the capture saw no encrypted pod traffic at all`);
  if (espMode === 'kernel' && s.espUdp) {
    problems.push(
      `${s.espUdp} ESP packets in UDP 4500 although the kernel does ESP between nodes with no NAT between them: NAT-T or strongSwan's userspace ESP is in use`,
    );
  }
  const kinds = espMode === 'kernel' ? `${s.esp - s.espUdp} raw ESP (protocol 50), ${s.espUdp} ESP in UDP 4500` : `${s.esp} ESP`;
  return {
    name: 'capture',
    ok: !problems.length,
    summary: `underlay during the pings: ${s.total} packets: ${kinds}, ${s.ike} IKE, ${s.clearPod.length} clear-text pod packets, ${s.otherIp.length} other IPv4, ${s.linkLocal} link-local (ARP/IPv6/IGMP)`,
    problems,
    values: { total: s.total, esp: s.esp, espUdp: s.espUdp, ike: s.ike, clearPod: s.clearPod.length, otherIp: s.otherIp.length },
  };
}
