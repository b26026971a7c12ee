// Sources: a packet to a remote pod crosses the underlay inside ESP whatever made it — not
// only a pod (the pings check), but the node itself with its own underlay address (a
// hostNetwork process, a daemon bound to the node IP), and kube-proxy's NAT: a NodePort
// client DNATed to a pod on another node and marked for masquerade, a pod's cluster-IP packet
// marked by masqueradeAll. kube-proxy's rule layout is installed the way kube-proxy installs
// it (kube-proxy.ts: jumps prepended, after the node network's own rules), so the check also
// proves that nothing depends on rule order. Every probe must be answered, by the right pod,
// and the underlay capture meanwhile must hold no clear-text packet to or from the pod range.
import { captureUnderlay, classifyCapture, clearTextProblems, type CaptureSummary } from '../capture.ts';
import { guardDropped, readGuard, type GuardCounts } from '../guard.ts';
import { serviceRules, serviceRulesRemoval, type ProxiedService, type ProxyMode } from '../kube-proxy.ts';
import { LISTEN_PORT, mapLimit, ping, tcpAskUntil, tokenListener } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { nodeNamed, nodesWithPods, type Background, type CheckNode, type CheckTarget, type CheckTopology } from '../target.ts';
import { addressBook } from './traffic.ts';
import type { PairStatus } from '../mesh.ts';
import { cidr, formatIpv4, lastAddress } from '../../plan/ipv4.ts';

type SourceKind = 'node-address' | 'node-tcp' | 'nodeport' | 'service';

/** What each kind of probe is, for the report. */
const SOURCE_KINDS: Record<SourceKind, string> = {
  'node-address': 'node → remote pod, ping from the node address',
  'node-tcp': 'node → remote pod, TCP bound to the node address',
  nodeport: 'NodePort (kube-proxy DNAT + masquerade mark) → pod on another node',
  service: 'pod → cluster IP with masqueradeAll → pod on another node',
};

export interface SourceProbe {
  kind: SourceKind;
  /** Namespace the client runs in. */
  ns: string;
  /** The node whose rules the packet leaves through (the sender, or the NodePort's node). */
  via: string;
  /** The node of the destination pod. */
  to: string;
  dst: string;
  /** TCP port (ping when absent). */
  port?: number;
  /** Client source address (the node's own). */
  bind?: string;
  /** What the destination pod answers on TCP: its name. */
  token: string;
  label: string;
}

/** The check's emulated services: cluster IPs from the top of the service range, NodePorts from the top of kube-proxy's default range. */
const SERVICE_PORT = 65080;
const NODEPORT_TOP = 32767;

/** Service j of the check (j = index of the destination node among the nodes with pods). */
export function serviceAddress(serviceCidr: string, j: number): { clusterIp: string; nodePort: number } {
  return { clusterIp: formatIpv4(lastAddress(cidr(serviceCidr)) - 1 - j), nodePort: NODEPORT_TOP - j };
}

/** The services kube-proxy would have on node `a`: one per other node with pods, its first pod the endpoint. */
export function servicesOn(t: CheckTopology, podIps: Record<string, { ip: string }>, a: CheckNode): ProxiedService[] {
  return nodesWithPods(t).flatMap((b, j) => {
    if (b === a) return [];
    const { clusterIp, nodePort } = serviceAddress(t.serviceCidr, j);
    return [
      {
        name: `kube-ipsec-check/${b.pods[0]!.name}:http`,
        clusterIp: { ip: clusterIp, port: SERVICE_PORT },
        nodePort,
        endpoint: { ip: podIps[b.pods[0]!.ns]?.ip ?? '', port: LISTEN_PORT },
      },
    ];
  });
}

/**
 * Every probe: every node (with its address) → the first pod of every other node with pods,
 * by ping and by TCP; for every two nodes with pods, a NodePort on one reached from outside
 * (the upstream, else a third node, else the destination's node) and a cluster IP reached
 * from the first's pod, both ending in the other's pod.
 */
export function sourceProbes(t: CheckTopology, podIps: Record<string, { ip: string }>): SourceProbe[] {
  const ip = (ns: string) => podIps[ns]?.ip ?? '';
  const pods = nodesWithPods(t);
  const probes: SourceProbe[] = [];
  for (const a of t.nodes) {
    for (const b of pods.filter((x) => x !== a)) {
      const pod = b.pods[0]!;
      const common = { ns: a.ns, via: a.name, to: b.name, dst: ip(pod.ns), bind: a.ip, token: pod.name };
      probes.push({ kind: 'node-address', ...common, label: `${a.name} ${a.ip} → ${pod.name}` });
      probes.push({ kind: 'node-tcp', ...common, port: LISTEN_PORT, label: `${a.name} ${a.ip} → ${pod.name}:${LISTEN_PORT}` });
    }
  }
  for (const a of pods) {
    for (const [j, b] of pods.entries()) {
      if (b === a) continue;
      const pod = b.pods[0]!;
      const svc = serviceAddress(t.serviceCidr, j);
      const outside = t.upstream ?? t.nodes.find((n) => n !== a && n !== b) ?? b;
      const client = 'name' in outside ? outside.name : 'upstream';
      probes.push({
        kind: 'nodeport',
        ns: outside.ns,
        via: a.name,
        to: b.name,
        dst: a.ip,
        port: svc.nodePort,
        token: pod.name,
        label: `${client} → ${a.name} ${a.ip}:${svc.nodePort} → ${pod.name}`,
      });
      const from = a.pods[0]!;
      probes.push({
        kind: 'service',
        ns: from.ns,
        via: a.name,
        to: b.name,
        dst: svc.clusterIp,
        port: SERVICE_PORT,
        token: pod.name,
        label: `${from.name} → ${svc.clusterIp}:${SERVICE_PORT} → ${pod.name}`,
      });
    }
  }
  return probes;
}

/** What the probes need in place: a listener in every destination pod, kube-proxy's rules on every NodePort/service node. */
export interface SourcesSetup {
  probes: SourceProbe[];
  /** Removes the rules and stops the listeners (idempotent; errors are reported, not thrown). */
  teardown(): Promise<string[]>;
}

/** Runs `argv` on the node, `input` on its stdin. */
async function runOnNode(lab: CheckTarget, node: string, argv: string[], input?: string, allowFail = false) {
  return lab.runner.run(lab.backend.onNode(node, argv), { ...(input !== undefined && { input }), allowFail, timeoutMs: 30_000 });
}

/** kube-proxy's rules of a check, installed on a node until removed. */
export interface InstalledServices {
  /** Removes them (an error message if that failed; never throws). */
  remove(): Promise<string | undefined>;
}

/**
 * Installs kube-proxy's rules for `services` on `node` (kube-proxy.ts), after removing any a
 * check that crashed left there (a no-op otherwise). `onInstall` gets the removal before the
 * rules go in, so a half-done install is taken away too.
 */
export async function installServices(
  lab: CheckTarget,
  node: string,
  services: ProxiedService[],
  mode: ProxyMode,
  onInstall: (s: InstalledServices) => void,
): Promise<void> {
  const removal = serviceRulesRemoval(services);
  await runOnNode(lab, node, ['sh', '-s'], removal, true);
  onInstall({
    async remove() {
      const out = await runOnNode(lab, node, ['sh', '-s'], removal, true);
      return out.code === 0 ? undefined : `removing the check's kube-proxy rules from ${node}: ${out.stderr.trim()}`;
    },
  });
  await runOnNode(lab, node, ['iptables-restore', '-w', '--noflush'], serviceRules(services, mode));
}

export async function setUpSources(lab: CheckTarget, only: (p: SourceProbe) => boolean = () => true): Promise<SourcesSetup> {
  const t = lab.topology;
  const probes = sourceProbes(t, lab.pods).filter(only);
  const listeners: Background[] = [];
  const installed: InstalledServices[] = [];
  let done: Promise<string[]> | undefined;
  const teardown = () =>
    (done ??= (async () => {
      const errors: string[] = [];
      for (const s of installed) {
        const error = await s.remove();
        if (error) errors.push(error);
      }
      await Promise.all(listeners.map((l) => l.stop().catch((e: Error) => errors.push(e.message))));
      return errors;
    })());
  try {
    const targets = [...new Map(probes.map((p) => [p.token, nodeNamed(t, p.to).pods[0]!])).values()];
    for (const pod of targets) listeners.push(await tokenListener(lab, pod.ns, pod.name));
    for (const node of [...new Set(probes.filter((p) => p.kind === 'nodeport' || p.kind === 'service').map((p) => p.via))]) {
      await installServices(lab, node, servicesOn(t, lab.pods, nodeNamed(t, node)), { masqueradeAll: true, clusterCidr: t.podCidr }, (s) => installed.push(s));
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  return { probes, teardown };
}

/** How a probe went: answered (TCP: by the pod it was meant for) within `tries` attempts, and why an attempt was not. */
export interface ProbeOutcome {
  ok: boolean;
  tries: number;
  /** Why the last unanswered attempt was not answered. */
  why?: string;
}

export async function runSourceProbes(lab: CheckTarget, probes: SourceProbe[]): Promise<ProbeOutcome[]> {
  return mapLimit(probes, 12, async (p) => {
    // Three tries, 2 s each: under software emulation with Kubernetes running, a first reply
    // (new conntrack entry, SNAT, the pod's neighbour) was seen to take longer than 1 s.
    if (p.port === undefined) {
      const r = await ping(lab, p.ns, p.dst, { count: 3, interval: 0.5, wait: 2, ...(p.bind && { source: p.bind }) });
      return { ok: r.received > 0, tries: 1, ...(r.why && { why: r.why }) };
    }
    const r = await tcpAskUntil(lab, p.ns, p.dst, p.port, (text) => text === p.token, p.bind ? { bind: p.bind } : {});
    return { ok: r.text !== undefined, tries: r.tries, ...(r.why && { why: r.why }) };
  });
}

export async function checkSources(lab: CheckTarget, pairs: PairStatus[] = []): Promise<CheckResult> {
  const t = lab.topology;
  if (nodesWithPods(t).length < 2)
    return { name: 'sources', ok: false, summary: 'needs pods on two nodes', problems: ['no two nodes run pods: there is no remote pod to send to'] };
  const setup = await setUpSources(lab);
  let answered: ProbeOutcome[] = [];
  let lines: string[] = [];
  const guards = new Map<string, { before?: GuardCounts; after?: GuardCounts }>();
  let failure: Error | undefined;
  try {
    for (const n of t.nodes) guards.set(n.name, { before: await readGuard(lab, n.name) });
    const capture = await captureUnderlay(lab, 'sources');
    try {
      answered = await runSourceProbes(lab, setup.probes);
    } finally {
      lines = await capture.stop();
    }
    for (const n of t.nodes) guards.get(n.name)!.after = await readGuard(lab, n.name);
  } catch (err) {
    failure = err as Error;
  }
  // Teardown always runs; a failure of the probes stays the error reported, with teardown's
  // problems added to it rather than replacing it.
  const errors = await setup.teardown();
  if (failure) {
    if (errors.length) failure.message += `; teardown: ${errors.join('; ')}`;
    throw failure;
  }
  if (errors.length) throw new Error(errors.join('; '));
  const drops = new Map([...guards].map(([n, g]) => [n, guardDropped(g.before, g.after)]));
  const down = pairs.filter((p) => !p.up).map((p) => [p.a, p.b] as const);
  return sourcesResult(setup.probes, answered, classifyCapture(lines, t.podCidr), drops, addressBook(lab), down);
}

/** Why a probe of this kind went unanswered, pointing at the layer that carries it (or at the tunnel, when it is down). */
function hint(p: SourceProbe, drops: Map<string, number>, down: readonly (readonly [string, string])[]): string {
  const tunnel = down.find(([a, b]) => (a === p.via && b === p.to) || (a === p.to && b === p.via));
  if (tunnel) return `the tunnel ${tunnel[0]} ↔ ${tunnel[1]} is not up: see tunnels`;
  const guard = drops.get(p.via) ? `; ${p.via}'s guard dropped ${drops.get(p.via)} packets meanwhile: they would have left outside ESP` : '';
  const where =
    p.kind === 'nodeport' || p.kind === 'service'
      ? `after kube-proxy's DNAT and masquerade mark, ${p.via}'s node network (nft table kube-ipsec, chain pod-source-nat) must give the packet the bridge address before any MASQUERADE`
      : `${p.via}'s node network (nft table kube-ipsec, chain pod-source-nat) must give a node-address packet to a remote pod the bridge address, which the IPsec selectors carry`;
  return `${where}${guard}`;
}

export function sourcesResult(
  probes: SourceProbe[],
  answered: readonly ProbeOutcome[],
  capture: CaptureSummary,
  drops: Map<string, number>,
  book: Map<string, string>,
  /** Node pairs whose tunnel is not up (the tunnels check's finding). */
  down: readonly (readonly [string, string])[] = [],
): CheckResult {
  const kinds = Object.keys(SOURCE_KINDS) as SourceKind[];
  const lines = kinds.map((k) => {
    const mine = probes.map((p, i) => ({ p, o: answered[i] })).filter((x) => x.p.kind === k);
    const ok = mine.filter((x) => x.o?.ok);
    // Answers that took a retry stay visible: a path that needs them is worth a look.
    const retried = ok.filter((x) => x.o!.tries > 1);
    const retries = retried.length ? ` (${retried.length} on a retry, first try: ${retried[0]!.o!.why ?? 'unanswered'})` : '';
    return `${SOURCE_KINDS[k]}: ${ok.length}/${mine.length} answered${retries}`;
  });
  // One problem per node, kind and cause: the node's own layers, or a tunnel that is down.
  const unanswered = new Map<string, { p: SourceProbe; why?: string }[]>();
  probes.forEach((p, i) => {
    const key = `${p.via}|${p.kind}|${hint(p, drops, down)}`;
    if (!answered[i]?.ok) unanswered.set(key, [...(unanswered.get(key) ?? []), { p, ...(answered[i]?.why && { why: answered[i].why }) }]);
  });
  const problems = [...unanswered.values()].map((ps) => {
    const first = ps[0]!.p;
    const of = probes.filter((p) => p.via === first.via && p.kind === first.kind).length;
    const e = ps
      .slice(0, 2)
      .map((x) => (x.why ? `${x.p.label} (${x.why})` : x.p.label))
      .join('; ');
    return `${first.via}: ${ps.length}/${of} unanswered (${SOURCE_KINDS[first.kind]}), e.g. ${e}: ${hint(first, drops, down)}`;
  });
  problems.push(...clearTextProblems(capture.clearPod, book));
  if (!capture.esp) problems.push('no ESP on the underlay during the probes: the capture saw no encrypted traffic at all');
  const ok = answered.filter((x) => x.ok).length;
  return {
    name: 'sources',
    ok: problems.length === 0 && probes.length > 0,
    summary: `${ok}/${probes.length} probes from non-pod sources answered; underlay meanwhile: ${capture.clearPod.length} clear-text pod packets, ${capture.esp} ESP`,
    lines,
    problems,
    values: { probes: probes.length, answered: ok, clearPod: capture.clearPod.length, esp: capture.esp },
  };
}
