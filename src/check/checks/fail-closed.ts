// Fail-closed: with strongSwan stopped on one node (`ipsec stop`, as `systemctl stop`
// would), its pods keep sending to every remote pod and the remote pods to them, and the
// underlay shows no clear-text pod packet; after `ipsec start`, traffic comes back — how
// many seconds later is measured.
import { classifyCapture, flowOf, captureUnderlay, type CaptureSummary } from '../capture.ts';
import { guardDropped, readGuard } from '../guard.ts';
import { nodeNamed, nodesWithPods, type CheckNode, type CheckTarget, type CheckTopology } from '../target.ts';
import { meshStatus } from '../mesh.ts';
import { notSingle, settleMesh } from './tunnels.ts';
import { mapLimit, ping, reaches, type Reachability } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { waitFor } from '../../run.ts';
import { cidr, lastAddress, parseIpv4 } from '../../plan/ipv4.ts';
import { addressBook } from './traffic.ts';
import { runSourceProbes, setUpSources } from './sources.ts';

export interface Flow {
  ns: string;
  label: string;
  dst: string;
}

/** Traffic to and from the victim: its pods and itself to every remote pod, every other node's first pod to its pods. */
export function victimFlows(t: CheckTopology, podIps: Record<string, { ip: string }>, victim: CheckNode): Flow[] {
  const ip = (ns: string) => podIps[ns]?.ip ?? '';
  const others = t.nodes.filter((n) => n !== victim);
  const remotePods = others.flatMap((n) => n.pods);
  const flows: Flow[] = [];
  for (const src of [...victim.pods, victim]) {
    for (const p of remotePods) flows.push({ ns: src.ns, label: `${src.name} → ${p.name}`, dst: ip(p.ns) });
  }
  for (const n of others) {
    const src = n.pods[0] ?? n;
    for (const p of victim.pods) flows.push({ ns: src.ns, label: `${src.name} → ${p.name}`, dst: ip(p.ns) });
  }
  return flows;
}

/**
 * Flows proving the victim is back: its first pod (or the node itself, e.g. the master) to
 * one pod of every other node, and every other node's first pod (or the node) to its pod.
 */
export function recoveryFlows(t: CheckTopology, podIps: Record<string, { ip: string }>, victim: CheckNode): Flow[] {
  const ip = (ns: string) => podIps[ns]?.ip ?? '';
  const mine = victim.pods[0];
  const flows: Flow[] = [];
  for (const n of t.nodes.filter((x) => x !== victim)) {
    const theirs = n.pods[0];
    const from = mine ?? victim;
    if (theirs) flows.push({ ns: from.ns, label: `${from.name} → ${theirs.name}`, dst: ip(theirs.ns) });
    if (mine) flows.push({ ns: (theirs ?? n).ns, label: `${(theirs ?? n).name} → ${mine.name}`, dst: ip(mine.ns) });
  }
  return flows;
}

export async function checkFailClosed(lab: CheckTarget, reach: Reachability, victimName?: string, recoveryTimeoutMs = 30_000): Promise<CheckResult> {
  const t = lab.topology;
  const victim = victimName ? nodeNamed(t, victimName) : t.nodes.find((n) => n.pods.length);
  if (!victim) return { name: 'fail-closed', ok: false, summary: 'no node runs pods', problems: ['the lab has no pods to send traffic'] };
  const pods = lab.pods;
  // Recovery means: what worked before the stop works again (what was already broken is the other checks' finding).
  const probes = recoveryFlows(t, pods, victim);
  const before = await mapLimit(probes, 10, (f) => reach.reaches(f.ns, f.dst));
  const baseline = probes.filter((_, i) => before[i]);
  const meshBefore = await meshStatus(lab);
  const upBefore = meshBefore.filter((p) => p.up).map((p) => `${p.a}|${p.b}`);
  const singleBefore = meshBefore.filter((p) => p.single).map((p) => `${p.a}|${p.b}`);
  const upAgain = async (onlyVictim: boolean) =>
    (await meshStatus(lab)).filter((p) => upBefore.includes(`${p.a}|${p.b}`) && (!onlyVictim || p.a === victim.name || p.b === victim.name)).every((p) => p.up);

  // The sources check's probes that involve the victim (its node address, NodePorts and
  // services on it or to its pods), set up while its tunnels still stand.
  const sources = nodesWithPods(t).length >= 2 ? await setUpSources(lab, (p) => p.via === victim.name || p.to === victim.name) : undefined;
  const guardBefore = await readGuard(lab, victim.name);
  const flows = victimFlows(t, pods, victim);
  let answered = 0;
  let sourcesAnswered: string[] = [];
  let lines: string[] = [];
  let blackholes = '';
  let guardDrops = 0;
  let restart = 0;
  try {
    await lab.backend.stopStrongswan(victim.name);
    const capture = await captureUnderlay(lab, `fail-closed-${victim.name}`);
    try {
      const [results, fromSources] = await Promise.all([
        mapLimit(flows, 24, (f) => ping(lab, f.ns, f.dst, { count: 2, interval: 0.2, wait: 1 })),
        sources ? runSourceProbes(lab, sources.probes) : [],
      ]);
      answered = results.reduce((sum, r) => sum + r.received, 0);
      sourcesAnswered = (sources?.probes ?? []).filter((_, i) => fromSources[i]?.ok).map((p) => p.label);
    } finally {
      lines = await capture.stop();
    }
    blackholes = (await lab.runner.run(lab.backend.onNode(victim.name, ['ip', 'route', 'show', 'type', 'blackhole']), { allowFail: true })).stdout;
    guardDrops = guardDropped(guardBefore, await readGuard(lab, victim.name));
  } finally {
    // Whatever happened meanwhile, the node gets its strongSwan back.
    restart = performance.now();
    try {
      await lab.backend.startStrongswan(victim.name);
    } finally {
      await sources?.teardown();
    }
  }
  const tunnelsBack = await waitFor(() => upAgain(true), recoveryTimeoutMs, 50);
  const saSeconds = (performance.now() - restart) / 1000;
  const trafficBack =
    baseline.length > 0 &&
    (await waitFor(async () => (await mapLimit(baseline, 8, (f) => reaches(lab, f.ns, f.dst, 1, 0.25))).every(Boolean), recoveryTimeoutMs, 0));
  const trafficSeconds = (performance.now() - restart) / 1000;
  // The rest of the mesh must be whole again for whatever runs next.
  const meshBack = await waitFor(() => upAgain(false), recoveryTimeoutMs, 100);
  // …and back to one IKE_SA and one CHILD_SA per pair that had one before (the restarted node's initiators and answerers).
  const settled = await settleMesh(lab, undefined, false, (p) => singleBefore.includes(`${p.a}|${p.b}`));

  return failClosedResult({
    victim,
    topology: t,
    flows: flows.length,
    answered,
    sources: { probes: sources?.probes.length ?? 0, answered: sourcesAnswered },
    capture: classifyCapture(lines, t.podCidr),
    blackholes,
    guardDrops,
    book: addressBook(lab),
    recovery: { baseline: baseline.length, tunnelsBack, trafficBack, meshBack, notSingle: notSingle(settled), saSeconds, trafficSeconds },
  });
}

export interface FailClosedMeasure {
  victim: CheckNode;
  topology: CheckTopology;
  flows: number;
  /** Echo replies received while strongSwan was stopped (fail-closed: 0). */
  answered: number;
  /** The sources check's probes involving the victim, run meanwhile: how many, and those answered (fail-closed: none). */
  sources: { probes: number; answered: string[] };
  capture: CaptureSummary;
  /** `ip route show type blackhole` on the victim, while strongSwan was stopped. */
  blackholes: string;
  /** Packets the victim's guard dropped meanwhile (pod packets that would have left in clear). */
  guardDrops: number;
  book: Map<string, string>;
  recovery: {
    /** Recovery flows that worked before the stop. */
    baseline: number;
    tunnelsBack: boolean;
    trafficBack: boolean;
    meshBack: boolean;
    /** Pairs that did not settle back to one SA pair (their problems). */
    notSingle: string[];
    saSeconds: number;
    trafficSeconds: number;
  };
}

/** Does a blackhole route of `routes` cover the whole pod range? */
export function blackholeCovers(routes: string, podCidr: string): boolean {
  const pods = cidr(podCidr);
  return routes.split('\n').some((l) => {
    const m = /^blackhole (\S+)/.exec(l.trim());
    if (!m) return false;
    const [net, len] = m[1] === 'default' ? ['0.0.0.0', '0'] : m[1]!.includes('/') ? m[1]!.split('/') : [m[1]!, '32'];
    const base = parseIpv4(net!);
    if (base === undefined) return false;
    const c = { base, prefix: Number(len) };
    return c.base <= pods.base && lastAddress(pods) <= lastAddress(c);
  });
}

export function failClosedResult(m: FailClosedMeasure): CheckResult {
  const v = m.victim.name;
  const podCidr = m.topology.podCidr;
  const problems: string[] = [];
  const blackhole = blackholeCovers(m.blackholes, podCidr);
  const noBlackhole = `${v}'s main table has no blackhole route for ${podCidr} (the node-network script's \`ip route replace blackhole\`)`;
  if (m.capture.clearPod.length) {
    const cause = blackhole
      ? 'although it has a blackhole route for the pod range (a more specific route let it out?), and its guard did not drop them'
      : `${noBlackhole}, so pod traffic took the default route in clear text, and its guard did not drop it`;
    const first = m.capture.clearPod[0]!;
    const f = flowOf(first);
    const flow = f ? `${m.book.get(f.src) ?? f.src} → ${m.book.get(f.dst) ?? f.dst}` : '';
    problems.push(
      `${m.capture.clearPod.length} clear-text pod packets on the underlay while strongSwan was stopped on ${v} (${flow}, e.g. \`${first}\`): ${cause}`,
    );
  } else if (!blackhole) {
    // The guard kept the wire clean, but the first line of fail-closed is missing: routing.
    problems.push(
      `with strongSwan stopped on ${v}, ${noBlackhole}: remote pod traffic took the default route, and only the node network's guard kept it off the underlay (it dropped ${m.guardDrops} packets)`,
    );
  }
  if (m.answered && !m.capture.clearPod.length)
    problems.push(`${m.answered} echo replies came back while strongSwan was stopped on ${v}: pod traffic still flowed without it`);
  if (m.sources.answered.length && !m.capture.clearPod.length) {
    problems.push(
      `${m.sources.answered.length} probes from non-pod sources were answered while strongSwan was stopped on ${v} (e.g. ${m.sources.answered[0]}): traffic to its pods still flowed without it`,
    );
  }
  if (!m.recovery.baseline) problems.push(`no traffic to or from ${v}'s pods worked before strongSwan was stopped (see pings): recovery cannot be measured`);
  else if (!m.recovery.tunnelsBack) problems.push(`after \`ipsec start\` on ${v} its tunnels did not come back`);
  else if (!m.recovery.trafficBack) problems.push(`after \`ipsec start\` on ${v} its tunnels came back but its pods stayed unreachable`);
  else if (!m.recovery.meshBack) problems.push(`after \`ipsec start\` on ${v} not every node pair is up again`);
  else for (const p of m.recovery.notSingle) problems.push(`after \`ipsec start\` on ${v}: ${p}`);
  const back = m.recovery.trafficBack
    ? `traffic back (${m.recovery.baseline} flows) ${m.recovery.trafficSeconds.toFixed(2)} s after \`ipsec start\` (tunnels ${m.recovery.saSeconds.toFixed(2)} s)`
    : 'traffic did not come back';
  return {
    name: 'fail-closed',
    ok: problems.length === 0,
    summary: `strongSwan stopped on ${v}: ${m.capture.clearPod.length} clear-text pod packets on the underlay while ${m.flows} flows and ${m.sources.probes} probes from non-pod sources kept sending (${m.answered + m.sources.answered.length} answers; the guard dropped ${m.guardDrops}); ${back}`,
    problems,
    values: {
      clearPod: m.capture.clearPod.length,
      answered: m.answered,
      sourceProbes: m.sources.probes,
      sourcesAnswered: m.sources.answered.length,
      guardDrops: m.guardDrops,
      saSeconds: m.recovery.saSeconds,
      trafficSeconds: m.recovery.trafficSeconds,
    },
  };
}
