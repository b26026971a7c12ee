// Pod egress to the upstream router leaves with the node's address (masqueraded); pod→pod
// traffic keeps the pod's own source (or it would miss the IPsec selectors). Seen by tcpdump
// at the receivers; when it goes wrong, the node's nat table says which rule did it.
import { echoSources, startCapture } from '../capture.ts';
import { nodesWithPods, type Capture, type CheckTarget, type CheckNode, type CheckPod, type CheckTopology } from '../target.ts';
import type { PairStatus } from '../mesh.ts';
import { egressRewrites, explainPodToPodRewrite, parseNatRules } from '../nat.ts';
import { ping } from '../probe.ts';
import type { CheckResult } from '../report.ts';

export interface MasqueradeCase {
  node: CheckNode;
  pod: CheckPod;
  podIp: string;
  /** First pod of the next node that runs pods (none in a one-minion cluster). */
  peer?: { pod: CheckPod; ip: string };
}

export interface MasqueradeSeen {
  /** Sources of our echo requests at the upstream router. */
  upstream: string[];
  /** Sources of our echo requests at the peer pod. */
  peer: string[];
  natRules: string;
}

/**
 * One case per node with pods: its first pod to upstream, and to the first pod of the next
 * node with pods whose tunnel to it is up (a down tunnel is the tunnels check's finding).
 */
function masqueradeCases(lab: CheckTarget, pairs: PairStatus[]): MasqueradeCase[] {
  const withPods = nodesWithPods(lab.topology);
  const ip = (p: CheckPod) => lab.pods[p.ns]?.ip ?? '';
  const up = (a: string, b: string) => pairs.some((p) => p.up && ((p.a === a && p.b === b) || (p.a === b && p.b === a)));
  return withPods.map((node, i) => {
    const others = [...withPods.slice(i + 1), ...withPods.slice(0, i)];
    const next = others.find((o) => up(node.name, o.name)) ?? others[0];
    const pod = node.pods[0]!;
    return { node, pod, podIp: ip(pod), ...(next && { peer: { pod: next.pods[0]!, ip: ip(next.pods[0]!) } }) };
  });
}

/** A cluster with a machine outside it to send pod egress to (the labs' upstream router). */
type WithUpstream = CheckTarget & { topology: CheckTopology & { upstream: NonNullable<CheckTopology['upstream']> } };

export async function checkMasquerade(lab: CheckTarget, pairs: PairStatus[]): Promise<CheckResult> {
  if (!lab.topology.upstream) throw new Error('masquerade needs a machine outside the cluster (an upstream) to send pod egress to');
  return masquerade(lab as WithUpstream, pairs);
}

async function masquerade(lab: WithUpstream, pairs: PairStatus[]): Promise<CheckResult> {
  const t = lab.topology;
  const cases = masqueradeCases(lab, pairs);
  const captures: Capture[] = [];
  let upstreamLines: string[] = [];
  const peerLines = new Map<string, string[]>();
  try {
    const upstream = await startCapture(lab, t.upstream.ns, t.upstream.dev, 'masquerade-upstream', ['icmp']);
    captures.push(upstream);
    const destinations = [...new Map(cases.filter((c) => c.peer).map((c) => [c.peer!.pod.ns, c.peer!.pod])).values()];
    const peers = await Promise.all(
      destinations.map(async (pod) => [pod.ns, await startCapture(lab, pod.ns, 'eth0', `masquerade-${pod.name}`, ['icmp'])] as const),
    );
    captures.push(...peers.map(([, cap]) => cap));
    await Promise.all(
      cases.flatMap((c) => [
        ping(lab, c.pod.ns, t.upstream.ip, { count: 2, interval: 0.2, wait: 1 }),
        ...(c.peer ? [ping(lab, c.pod.ns, c.peer.ip, { count: 2, interval: 0.2, wait: 1 })] : []),
      ]),
    );
    upstreamLines = await upstream.stop();
    for (const [ns, lines] of await Promise.all(peers.map(async ([ns, cap]) => [ns, await cap.stop()] as const))) peerLines.set(ns, lines);
  } finally {
    await Promise.all(captures.map((c) => c.stop().catch(() => [])));
  }
  const seen = await Promise.all(
    cases.map(async (c): Promise<MasqueradeSeen> => {
      const nat = await lab.runner.run(lab.backend.onNode(c.node.name, ['iptables', '-w', '-t', 'nat', '-S']), { allowFail: true, timeoutMs: 20_000 });
      // Several nodes' pods send at once; source NAT can only pick an address of the sending node.
      const mine = new Set([c.podIp, c.node.ip, c.node.gateway]);
      const sources = (lines: string[], dst: string) =>
        echoSources(lines)
          .filter((e) => e.dst === dst && mine.has(e.src))
          .map((e) => e.src);
      return {
        upstream: sources(upstreamLines, t.upstream.ip),
        peer: c.peer ? sources(peerLines.get(c.peer.pod.ns) ?? [], c.peer.ip) : [],
        natRules: nat.stdout,
      };
    }),
  );
  return masqueradeResult(t, cases, seen);
}

export function masqueradeResult(t: WithUpstream['topology'], cases: MasqueradeCase[], seen: MasqueradeSeen[]): CheckResult {
  const lines: string[] = [];
  const problems: string[] = [];
  let passed = 0;
  cases.forEach((c, i) => {
    const s = seen[i]!;
    const rules = parseNatRules(s.natRules);
    // Egress: the upstream router must see the node's address, never the pod's.
    const egressOk = s.upstream.includes(c.node.ip) && !s.upstream.includes(c.podIp);
    lines.push(`${c.pod.name} → upstream ${t.upstream.ip}: ${describe(s.upstream, c.node.ip, 'masqueraded')}`);
    if (!egressOk) {
      const rule = egressRewrites(rules, c.node.podSubnet, t.upstream.ip)[0];
      const cause = s.upstream.includes(c.podIp)
        ? rule
          ? `although \`${rule.text}\` exists (is its chain reached from POSTROUTING?)`
          : `${c.node.name}'s nat table has no MASQUERADE rule for ${c.node.podSubnet} (the node-network script's KUBE-IPSEC-POSTROUTING)`
        : 'no echo request reached it (forwarding or the default route of the node?)';
      problems.push(
        `${c.pod.name} ${c.podIp} → upstream ${t.upstream.ip}: ${s.upstream.length ? `arrived from ${[...new Set(s.upstream)].join(', ')}, not masqueraded to ${c.node.ip}` : 'never arrived'}: ${cause}`,
      );
    }
    let peerOk = true;
    if (c.peer) {
      peerOk = s.peer.length > 0 && s.peer.every((src) => src === c.podIp);
      lines.push(`${c.pod.name} → ${c.peer.pod.name} ${c.peer.ip}: ${describe(s.peer, c.podIp, 'source kept')}`);
      if (!peerOk) {
        const why = explainPodToPodRewrite(rules, c.node.podSubnet, t.podCidr) ?? 'no source-NAT rule of the node explains it';
        const what = s.peer.length ? `arrived from ${[...new Set(s.peer)].join(', ')} instead of ${c.podIp}` : 'never arrived';
        problems.push(`${c.node.name}: ${c.pod.name} ${c.podIp} → ${c.peer.pod.name} ${c.peer.ip} ${what}: ${why}`);
      }
    }
    if (egressOk && peerOk) passed++;
  });
  return {
    name: 'masquerade',
    ok: passed === cases.length && cases.length > 0,
    summary: `${passed}/${cases.length} nodes masquerade pod egress to upstream and keep pod→pod sources`,
    lines,
    problems: cases.length ? problems : ['no pods to test masquerading with'],
  };
}

function describe(sources: string[], expected: string, word: string): string {
  if (!sources.length) return 'nothing arrived';
  const uniq = [...new Set(sources)];
  return uniq.length === 1 && uniq[0] === expected ? `arrived from ${expected} (${word})` : `arrived from ${uniq.join(', ')}`;
}
