// Packet captures with real tcpdump inside a lab namespace (its PID recorded while it runs),
// and what a capture of the underlay says: ESP/IKE only, or clear-text pod packets.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cidr, contains, parseIpv4 } from '../plan/ipv4.ts';
import { capturesDir, type Lab } from './lab.ts';
import { inNetns } from './network.ts';
import { isOurs } from './procs.ts';
import { alive } from './strongswan.ts';
import type { LabProcess } from './state.ts';

export interface Capture {
  file: string;
  /** Stops tcpdump and returns the packets, one `tcpdump -nn -t` line each (idempotent). */
  stop(): Promise<string[]>;
}

/** tcpdump on `dev` in namespace `ns` of the lab (on this host, or inside a VM). */
export async function startCapture(lab: Lab, ns: string, dev: string, name: string, filter: string[] = []): Promise<Capture> {
  const remote = lab.backend.remoteCapture?.(ns, dev, name, filter);
  if (remote) return remote;
  mkdirSync(capturesDir(lab), { recursive: true });
  const file = join(capturesDir(lab), `${name}.pcap`);
  // --immediate-mode: without it packets of the last second sit in the ring and are lost on SIGTERM.
  const argv = inNetns(ns, ['tcpdump', '--immediate-mode', '-nn', '-U', '-Z', 'root', '-i', dev, '-w', file, ...filter]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const record: LabProcess = { pid: child.pid!, comm: 'tcpdump', ns, role: 'capture', what: `capture ${name} on ${dev} in ${ns}` };
  lab.state.addProcess(record);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!/listening on/.test(stderr)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGKILL');
      lab.state.removeProcess(record.pid);
      throw new Error(`tcpdump on ${dev} in ${ns} did not start: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let stopped: Promise<string[]> | undefined;
  const stop = async (): Promise<string[]> => {
    // Let the last replies of the traffic in flight land before stopping.
    await new Promise((r) => setTimeout(r, 200));
    if (isOurs(record)) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (alive(record.pid) && isOurs(record)) child.kill('SIGKILL');
    lab.state.removeProcess(record.pid);
    const r = await lab.runner.run(inNetns(ns, ['tcpdump', '-nn', '-t', '-r', file]), { allowFail: true, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`reading ${file}: ${r.stderr.trim()}`);
    return r.stdout.split('\n').filter(Boolean);
  };
  return { file, stop: () => (stopped ??= stop()) };
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

/** Addresses and protocol of an IPv4 line (`IP 10.240.1.2 > 10.240.2.2: ICMP echo request…` → ICMP). */
export function flowOf(line: string): { src: string; dst: string; proto: string } | undefined {
  const m = IPV4_LINE.exec(line);
  return m ? { src: m[1]!, dst: m[3]!, proto: m[5]!.split(/[\s,]/)[0]! } : undefined;
}

/** Sources of ICMP echo requests in a capture (`IP a > b: ICMP echo request…`). */
export function echoSources(lines: string[]): { src: string; dst: string }[] {
  return lines.flatMap((l) => {
    const m = /^IP (\d+\.\d+\.\d+\.\d+) > (\d+\.\d+\.\d+\.\d+): ICMP echo request/.exec(l);
    return m ? [{ src: m[1]!, dst: m[2]! }] : [];
  });
}
