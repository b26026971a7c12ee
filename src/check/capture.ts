// Packet captures with real tcpdump, wherever the backend runs it (a namespace of this host,
// a VM, a node over ssh), and what a capture of the underlay says: ESP/IKE only, or
// clear-text pod packets.
import { cidr, contains, parseIpv4 } from '../plan/ipv4.ts';
import type { Capture, ClusterExec } from './target.ts';

/** tcpdump on `dev` in namespace `ns` (a pod's, a node's, the upstream's). */
export function startCapture(lab: ClusterExec, ns: string, dev: string, name: string, filter: string[] = []): Promise<Capture> {
  return lab.backend.capture(ns, dev, name, filter);
}

/** tcpdump of the underlay between the nodes. */
export function captureUnderlay(lab: ClusterExec, name: string, filter: string[] = [], opts: { acrossReboot?: string } = {}): Promise<Capture> {
  return lab.backend.captureUnderlay(name, filter, opts);
}

export interface CaptureSummary {
  total: number;
  /** ESP, raw (proto 50) or in UDP 4500. */
  esp: number;
  /** Of those, ESP in UDP 4500 (NAT-T, or strongSwan's userspace ESP); the rest is raw ESP. */
  espUdp: number;
  /** IKE on UDP 500/4500 (including NAT-T keepalives and port-unreachable answers to IKE). */
  ike: number;
  /** IPv4 packets from or to the pod range in clear text. */
  clearPod: string[];
  /** Other IPv4 between the machines (neither IPsec nor pod traffic). */
  otherIp: string[];
  /** Link-local chatter: ARP, IPv6, other non-IPv4 frames, and IPv4 to the local network control
   * block 224.0.0.0/24 (IGMP reports a bridge port sends when it comes up): never routed, so it
   * cannot carry a pod's packet. */
  linkLocal: number;
}

/** A node answering IKE while its charon is down: "ICMP 192.168.10.23 udp port 500 unreachable". */
const IKE_ICMP_ERROR = /^ICMP \S+ udp port (500|4500) unreachable/;
/** 224.0.0.0/24: link-local multicast (IGMP, all-hosts), never forwarded by a router. */
const LOCAL_NETWORK_CONTROL = cidr('224.0.0.0/24');
const IPV4_LINE = /^IP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: (.*)$/;

/** Classifies `tcpdump -nn -t` lines of an underlay capture. */
export function classifyCapture(lines: string[], podCidr: string): CaptureSummary {
  const pods = cidr(podCidr);
  const inPods = (ip: string) => contains(pods, parseIpv4(ip) ?? -1);
  const s: CaptureSummary = { total: 0, esp: 0, espUdp: 0, ike: 0, clearPod: [], otherIp: [], linkLocal: 0 };
  for (const line of lines) {
    s.total++;
    const m = IPV4_LINE.exec(line);
    if (!m) {
      s.linkLocal++;
      continue;
    }
    const [, src, sport, dst, dport, rest] = m as unknown as [string, string, string | undefined, string, string | undefined, string];
    const ports = [sport, dport].map(Number);
    if (rest.startsWith('ESP(')) s.esp++;
    else if (rest.includes('UDP-encap: ESP(')) {
      s.esp++;
      s.espUdp++;
    } else if (ports.some((p) => p === 500 || p === 4500) || IKE_ICMP_ERROR.test(rest)) s.ike++;
    else if (inPods(src) || inPods(dst)) s.clearPod.push(line);
    else if (contains(LOCAL_NETWORK_CONTROL, parseIpv4(dst) ?? -1)) s.linkLocal++;
    else s.otherIp.push(line);
  }
  return s;
}

/** An IPv4 line's addresses, TCP/UDP ports and what tcpdump says after them (`IP 10.240.1.2.8080 > 192.168.10.254.40001: Flags [S.], …`). */
export function packetOf(line: string): { src: string; sport?: number; dst: string; dport?: number; rest: string } | undefined {
  const m = IPV4_LINE.exec(line);
  if (!m) return undefined;
  return { src: m[1]!, ...(m[2] && { sport: Number(m[2]) }), dst: m[3]!, ...(m[4] && { dport: Number(m[4]) }), rest: m[5]! };
}

/** Addresses and protocol of an IPv4 line (`IP 10.240.1.2 > 10.240.2.2: ICMP echo request…` → ICMP). */
export function flowOf(line: string): { src: string; dst: string; proto: string } | undefined {
  const p = packetOf(line);
  return p ? { src: p.src, dst: p.dst, proto: p.rest.split(/[\s,]/)[0]! } : undefined;
}

/** Sources of ICMP echo requests in a capture (`IP a > b: ICMP echo request…`). */
export function echoSources(lines: string[]): { src: string; dst: string }[] {
  return lines.flatMap((l) => {
    const m = /^IP (\d+\.\d+\.\d+\.\d+) > (\d+\.\d+\.\d+\.\d+): ICMP echo request/.exec(l);
    return m ? [{ src: m[1]!, dst: m[2]! }] : [];
  });
}

/** One problem per clear-text flow of a capture ("3 clear-text pod packets on the underlay: minion1 192.168.10.21 → minion2-pod1 10.240.2.2 (ICMP), e.g. `…`"). */
export function clearTextProblems(clearPod: string[], book: Map<string, string>): string[] {
  const name = (ip: string) => (book.has(ip) ? `${book.get(ip)} ${ip}` : ip);
  const flows = new Map<string, string[]>();
  for (const l of clearPod) {
    const f = flowOf(l);
    const key = f ? `${name(f.src)} → ${name(f.dst)} (${f.proto})` : l;
    flows.set(key, [...(flows.get(key) ?? []), l]);
  }
  return [...flows].map(([flow, ls]) => `${ls.length} clear-text pod packets on the underlay: ${flow}, e.g. \`${ls[0]}\``);
}
