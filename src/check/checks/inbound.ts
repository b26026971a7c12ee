// Inbound: what may reach a pod in clear from the underlay. Nothing that names a pod, nor
// anything that poses as one. An attacker on the underlay — the labs' upstream router, else
// another node whose root crafts packets — sends clear-text frames routed through each node
// with pods (that node's MAC as next hop) to a pod there: an ICMP echo and a TCP SYN to the
// pod's listener, from its own address and posing as a pod of another node. Frames written
// to a packet socket (frames.ts): a node as attacker would otherwise have its own guard and
// routes stop them before they leave. None may reach the pod or be answered, and the node's
// inbound chain must have counted them: that proves they arrived, so a check whose frames
// went nowhere fails instead of passing. What must still reach the pod does: a NodePort on
// the node's own address (kube-proxy's rules, kube-proxy.ts) from the same attacker, the
// node itself, and another pod of the node across the bridge.
import { packetOf, startCapture } from '../capture.ts';
import type { Capture } from '../target.ts';
import { craftFrame, sendFramesScript } from '../frames.ts';
import { guardDropped, readGuard, type GuardCounts } from '../guard.ts';
import type { ProxiedService } from '../kube-proxy.ts';
import { POD_IFNAME } from '../pods.ts';
import { LISTEN_PORT, tcpAskUntil, tokenListener } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import { nodeNamed, nodesWithPods, type Background, type CheckNode, type CheckPod, type CheckTarget, type CheckTopology } from '../target.ts';
import { installServices, serviceAddress, type InstalledServices } from './sources.ts';

/** Who sends the crafted packets: a machine on the underlay outside the cluster, or a node. */
export interface Attacker {
  /** "upstream", or the node's name. */
  name: string;
  ns: string;
  ip: string;
}

export interface InboundProbe {
  /** The node the packet is routed through, and its pod it is addressed to. */
  victim: string;
  pod: CheckPod;
  dst: string;
  attacker: Attacker;
  /** The source written into the packet: the attacker's own address, or a forged one in the pod range. */
  src: string;
  /** Whose address is forged: a pod of another node (answers would go to it), or another node's bridge. */
  posingAs?: { name: string; pod?: CheckPod };
  proto: 'icmp' | 'tcp';
  /** ICMP echo identifier, TCP source port and IPv4 identification: tells its packets and answers apart. */
  tag: number;
  label: string;
}

/** What must still reach the victim's pod, and how. */
type ControlKind = 'nodeport' | 'node' | 'bridge';

const CONTROL_KINDS: Record<ControlKind, string> = {
  nodeport: "a NodePort on the node's address, from the attacker (kube-proxy's DNAT after the inbound chain)",
  node: 'the node itself (kubelet probes, hostNetwork processes)',
  bridge: 'another pod of the node, across the bridge (bridged frames pass prerouting too)',
};

export interface InboundControl {
  victim: string;
  kind: ControlKind;
  /** Where the client runs. */
  ns: string;
  dst: string;
  port: number;
  /** What the pod's listener answers: its name. */
  token: string;
  /** kube-proxy's rules the NodePort needs on the victim. */
  service?: ProxiedService;
  label: string;
}

/** The first tag; each probe takes the next (any 16-bit values would do: they only tell the check's packets apart). */
const FIRST_TAG = 40_000;

/** The attacker of a node: the outside machine if there is one, else the master, else another node. */
export function attackerOf(t: CheckTopology, victim: CheckNode): Attacker | undefined {
  if (t.upstream) return { name: 'upstream', ns: t.upstream.ns, ip: t.upstream.ip };
  const other = t.nodes.find((n) => n !== victim && n.role === 'master') ?? t.nodes.find((n) => n !== victim);
  return other && { name: other.name, ns: other.ns, ip: other.ip };
}

/** Why the check cannot run on this cluster (undefined: it can). */
export function inboundNotApplicable(t: CheckTopology): string | undefined {
  if (!nodesWithPods(t).length) return 'no node runs pods';
  if (nodesWithPods(t).every((v) => !attackerOf(t, v))) return 'no machine to attack the pods from: one node and no machine outside the cluster';
  return undefined;
}

/** Who a forged packet to `victim`'s pods poses as: the first pod of the next node with pods, else another node's bridge address. */
function posingAs(t: CheckTopology, podIps: Record<string, { ip: string }>, victim: CheckNode): { name: string; ip: string; pod?: CheckPod } | undefined {
  const pods = nodesWithPods(t);
  const next = pods[(pods.indexOf(victim) + 1) % pods.length];
  const pod = next && next !== victim ? next.pods[0] : undefined;
  if (pod && podIps[pod.ns]) return { name: pod.name, ip: podIps[pod.ns]!.ip, pod };
  const other = t.nodes.find((n) => n !== victim);
  return other && { name: `${other.name} (bridge)`, ip: other.gateway };
}

/** Per node with pods: ICMP echo and TCP SYN to its first pod, from the attacker's address and posing as another node's pod. */
export function inboundProbes(t: CheckTopology, podIps: Record<string, { ip: string }>): InboundProbe[] {
  const probes: InboundProbe[] = [];
  for (const v of nodesWithPods(t)) {
    const attacker = attackerOf(t, v);
    const pod = v.pods[0]!;
    const dst = podIps[pod.ns]?.ip;
    if (!attacker || !dst) continue;
    const forged = posingAs(t, podIps, v);
    const sources = [{ src: attacker.ip, as: undefined }, ...(forged ? [{ src: forged.ip, as: forged }] : [])];
    for (const s of sources) {
      for (const proto of ['icmp', 'tcp'] as const) {
        const what = proto === 'icmp' ? `ICMP echo → ${pod.name} ${dst}` : `TCP SYN → ${pod.name} ${dst}:${LISTEN_PORT}`;
        const from = s.as ? `${attacker.name} posing as ${s.as.name} ${s.src}` : `${attacker.name} ${s.src}`;
        probes.push({
          victim: v.name,
          pod,
          dst,
          attacker,
          src: s.src,
          ...(s.as && { posingAs: { name: s.as.name, ...(s.as.pod && { pod: s.as.pod }) } }),
          proto,
          tag: FIRST_TAG + probes.length,
          label: `${from}: ${what} via ${v.name}`,
        });
      }
    }
  }
  return probes;
}

/**
 * Per node with pods and an attacker: a NodePort on its address to its first pod (numbered
 * after the sources check's services), the node to that pod, and its second pod to it.
 */
export function inboundControls(t: CheckTopology, podIps: Record<string, { ip: string }>): InboundControl[] {
  const pods = nodesWithPods(t);
  return pods.flatMap((v, j) => {
    const attacker = attackerOf(t, v);
    const pod = v.pods[0]!;
    const ip = podIps[pod.ns]?.ip;
    if (!attacker || !ip) return [];
    const { clusterIp, nodePort } = serviceAddress(t.serviceCidr, pods.length + j);
    const service: ProxiedService = {
      name: `kube-ipsec-check/${pod.name}-inbound:http`,
      clusterIp: { ip: clusterIp, port: LISTEN_PORT },
      nodePort,
      endpoint: { ip, port: LISTEN_PORT },
    };
    const common = { victim: v.name, token: pod.name };
    const controls: InboundControl[] = [
      {
        ...common,
        kind: 'nodeport',
        ns: attacker.ns,
        dst: v.ip,
        port: nodePort,
        service,
        label: `${attacker.name} → ${v.name} ${v.ip}:${nodePort} (NodePort → ${pod.name})`,
      },
      { ...common, kind: 'node', ns: v.ns, dst: ip, port: LISTEN_PORT, label: `${v.name} → ${pod.name} ${ip}:${LISTEN_PORT}` },
    ];
    const neighbour = v.pods[1];
    if (neighbour)
      controls.push({ ...common, kind: 'bridge', ns: neighbour.ns, dst: ip, port: LISTEN_PORT, label: `${neighbour.name} → ${pod.name} ${ip}:${LISTEN_PORT}` });
    return controls;
  });
}

interface IpAddrJson {
  ifname: string;
  address?: string;
  addr_info?: { family?: string; local?: string }[];
}

/** `ip -j addr show` → the link holding `ip`: its name and MAC, if it has one (undefined: no link holds it). */
export function linkHolding(json: string, ip: string): { dev: string; mac?: string } | undefined {
  for (const link of JSON.parse(json) as IpAddrJson[]) {
    if (link.addr_info?.some((a) => a.family === 'inet' && a.local === ip)) return { dev: link.ifname, ...(link.address && { mac: link.address }) };
  }
  return undefined;
}

/** Is this capture line one of the probe's own packets (`IP src.tag > dst.8080: Flags [S]`, `IP src > dst: ICMP echo request, id tag, …`)? */
export function isProbePacket(p: InboundProbe, line: string): boolean {
  const k = packetOf(line);
  if (!k || k.src !== p.src || k.dst !== p.dst) return false;
  return p.proto === 'tcp'
    ? k.sport === p.tag && k.dport === LISTEN_PORT && k.rest.startsWith('Flags [S]')
    : new RegExp(`^ICMP echo request, id ${p.tag},`).test(k.rest);
}

/** Is this capture line an answer to the probe (SYN-ACK or RST, echo reply)? */
export function isAnswer(p: InboundProbe, line: string): boolean {
  const k = packetOf(line);
  if (!k || k.src !== p.dst || k.dst !== p.src) return false;
  return p.proto === 'tcp' ? k.sport === LISTEN_PORT && k.dport === p.tag : new RegExp(`^ICMP echo reply, id ${p.tag},`).test(k.rest);
}

/** What the check saw. */
export interface InboundSeen {
  /** Packets in each pod's namespace (on its eth0), by the pod's namespace. */
  pods: Record<string, string[]>;
  /** Packets from the pod range at each attacker, by its name. */
  attackers: Record<string, string[]>;
  /** Packets each node's inbound chain dropped meanwhile (undefined: the node has no inbound chain). */
  counted: Record<string, number | undefined>;
  /** Whether each control was answered (with its pod's token). */
  controls: boolean[];
}

/** Where an answer to the probe would land: at the attacker, or at the pod it posed as (through the tunnel). */
function answersAt(p: InboundProbe, seen: InboundSeen): string[] {
  if (!p.posingAs) return seen.attackers[p.attacker.name] ?? [];
  return p.posingAs.pod ? (seen.pods[p.posingAs.pod.ns] ?? []) : [];
}

const CHAIN = 'nft table kube-ipsec, chain inbound';

export function inboundResult(probes: InboundProbe[], controls: InboundControl[], seen: InboundSeen): CheckResult {
  const lines: string[] = [];
  const problems: string[] = [];
  const victims = [...new Set(probes.map((p) => p.victim))];
  let arrivedAll = 0;
  let answeredAll = 0;
  let countedAll = 0;
  for (const v of victims) {
    const mine = probes.filter((p) => p.victim === v);
    const pod = mine[0]!.pod;
    const arrived = mine.filter((p) => (seen.pods[p.pod.ns] ?? []).some((l) => isProbePacket(p, l)));
    const answered = mine.filter((p) => answersAt(p, seen).some((l) => isAnswer(p, l)));
    const counted = seen.counted[v];
    arrivedAll += arrived.length;
    answeredAll += answered.length;
    countedAll += counted ?? 0;
    const checked = controls.map((c, i) => ({ c, ok: seen.controls[i] === true })).filter((x) => x.c.victim === v);
    const still = checked.map((x) => `${x.c.kind} ${x.ok ? 'answered' : 'UNANSWERED'}`).join(', ');
    lines.push(
      `${v}: ${mine.length - arrived.length}/${mine.length} crafted clear-text packets to ${pod.name} kept out, ${counted === undefined ? 'no inbound chain' : `${counted} counted`}${still ? `; ${still}` : ''}`,
    );
    const noChain = counted === undefined ? `; ${v} has no inbound chain (\`nft list chain ip kube-ipsec inbound\` fails there)` : '';
    if (arrived.length) {
      const reflected = [...new Set(answered.filter((p) => p.posingAs?.pod).map((p) => p.posingAs!.name))];
      const answers = answered.length
        ? `, ${answered.length} answered${reflected.length ? ` (${reflected.join(', ')} got answers to packets it never sent, through the tunnel)` : ''}`
        : '';
      problems.push(
        `${v}: ${arrived.length}/${mine.length} clear-text packets from outside reached ${pod.name} ${mine[0]!.dst}${answers}, e.g. ${arrived[0]!.label}: ` +
          `${v}'s node network must drop what arrives from outside to or from the pod range unless it came out of a tunnel (${CHAIN})${noChain}`,
      );
    } else if (counted === undefined || counted < mine.length) {
      problems.push(
        `${v}: none of the ${mine.length} crafted packets reached ${pod.name}, but its inbound chain counted ${counted ?? 'nothing'}${noChain}: ` +
          `they did not arrive (${mine[0]!.attacker.name}'s link to ${v}?), so nothing was shown`,
      );
    }
    for (const x of checked.filter((y) => !y.ok))
      problems.push(
        `${x.c.label} unanswered: ${CONTROL_KINDS[x.c.kind]} must still reach the pod (${CHAIN} lets through what is addressed to the node, comes from the node, or from the bridge)`,
      );
  }
  const controlsOk = seen.controls.filter(Boolean).length;
  if (!probes.length) problems.push('no pod to send to, or no machine to send from');
  return {
    name: 'inbound',
    ok: problems.length === 0 && probes.length > 0,
    summary:
      `${probes.length - arrivedAll}/${probes.length} crafted clear-text packets to pods kept out (${countedAll} counted by the nodes' inbound chains, ${answeredAll} answered); ` +
      `${controlsOk}/${controls.length} connections that must still reach the pods answered (NodePort, node, bridge)`,
    lines,
    problems,
    values: { probes: probes.length, arrived: arrivedAll, answered: answeredAll, counted: countedAll, controls: controls.length, controlsAnswered: controlsOk },
  };
}

async function linkOf(lab: CheckTarget, ns: string, ip: string, who: string): Promise<{ dev: string; mac: string }> {
  const r = await lab.runner.run(lab.backend.inNs(ns, ['ip', '-j', 'addr', 'show']), { timeoutMs: 30_000 });
  const link = linkHolding(r.stdout, ip);
  if (!link) throw new Error(`no link of ${who} holds ${ip} (\`ip -j addr show\` there)`);
  if (!link.mac) throw new Error(`${link.dev}, ${who}'s link holding ${ip}, has no MAC address: crafted frames need an Ethernet underlay`);
  return { dev: link.dev, mac: link.mac };
}

export async function checkInbound(lab: CheckTarget): Promise<CheckResult> {
  const t = lab.topology;
  const probes = inboundProbes(t, lab.pods);
  const controls = inboundControls(t, lab.pods);
  const attackers = [...new Map(probes.map((p) => [p.attacker.name, p.attacker])).values()];
  const victims = [...new Set(probes.map((p) => p.victim))].map((v) => nodeNamed(t, v));
  const targets = [...new Map(probes.map((p) => [p.pod.ns, p.pod])).values()];
  const watched = [...new Map([...targets, ...probes.flatMap((p) => (p.posingAs?.pod ? [p.posingAs.pod] : []))].map((pod) => [pod.ns, pod])).values()];

  const listeners: Background[] = [];
  const captures: Capture[] = [];
  const installed: InstalledServices[] = [];
  const seen: InboundSeen = { pods: {}, attackers: {}, counted: {}, controls: [] };
  let failure: Error | undefined;
  try {
    for (const pod of targets) listeners.push(await tokenListener(lab, pod.ns, pod.name));
    const links = new Map<string, { dev: string; mac: string }>();
    for (const m of [...attackers, ...victims]) links.set(m.name, await linkOf(lab, m.ns, m.ip, m.name));
    const before = new Map<string, GuardCounts | undefined>();
    for (const v of victims) before.set(v.name, await readGuard(lab, v.name, 'inbound'));

    const podCaps = await Promise.all(
      watched.map(async (pod) => [pod.ns, await startCapture(lab, pod.ns, POD_IFNAME, `inbound-${pod.name}`, ['icmp', 'or', 'tcp'])] as const),
    );
    captures.push(...podCaps.map(([, c]) => c));
    const attackerCaps = await Promise.all(
      attackers.map(async (a) => [a.name, await startCapture(lab, a.ns, links.get(a.name)!.dev, `inbound-${a.name}`, ['src', 'net', t.podCidr])] as const),
    );
    captures.push(...attackerCaps.map(([, c]) => c));

    for (const a of attackers) {
      const from = links.get(a.name)!;
      const frames = probes
        .filter((p) => p.attacker.name === a.name)
        .map((p) => craftFrame({ srcMac: from.mac, dstMac: links.get(p.victim)!.mac, src: p.src, dst: p.dst, proto: p.proto, tag: p.tag, dport: LISTEN_PORT }));
      await lab.runner.run(lab.backend.inNs(a.ns, ['sh', '-c', sendFramesScript(from.dev, frames)]), { timeoutMs: 30_000 });
    }
    // Forwarded, answered and the answers back: well within a second on any underlay.
    await new Promise((r) => setTimeout(r, 1000));
    for (const [ns, c] of podCaps) seen.pods[ns] = await c.stop();
    for (const [name, c] of attackerCaps) seen.attackers[name] = await c.stop();
    for (const v of victims) {
      const after = await readGuard(lab, v.name, 'inbound');
      seen.counted[v.name] = after ? guardDropped(before.get(v.name), after) : undefined;
    }

    // The rendered kube-proxy's mode: masqueradeAll off, the pod range as its cluster CIDR.
    for (const c of controls.filter((x) => x.service))
      await installServices(lab, c.victim, [c.service!], { masqueradeAll: false, clusterCidr: t.podCidr }, (s) => installed.push(s));
    for (const c of controls) seen.controls.push((await tcpAskUntil(lab, c.ns, c.dst, c.port, (text) => text === c.token)).text !== undefined);
  } catch (err) {
    failure = err as Error;
  }
  // Teardown always runs; a failure of the probes stays the error reported, with teardown's
  // problems added to it rather than replacing it (as in sources).
  const errors = (await Promise.all(installed.map((s) => s.remove()))).filter((e): e is string => e !== undefined);
  await Promise.all([...captures.map((c) => c.stop()), ...listeners.map((l) => l.stop())].map((p) => p.catch((e: Error) => errors.push(e.message))));
  if (failure) {
    if (errors.length) failure.message += `; teardown: ${errors.join('; ')}`;
    throw failure;
  }
  if (errors.length) throw new Error(errors.join('; '));
  return inboundResult(probes, controls, seen);
}
