// CHECK: the pod's interface, addresses and routes against prevResult, plus what the Result
// does not show (host veth on the bridge, bridge up with its gateway, the IP reservation).
import type { Call } from '../context.ts';
import type { LinkJson, RouteJson } from '../kernel.ts';
import { hostVethName } from '../names.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { Interface, Result } from '../spec/result.ts';

export interface Expected {
  iface: Interface;
  /** "10.240.1.5/24" on the pod interface */
  addresses: string[];
  routes: { dst: string; gw?: string }[];
  mtu: number;
}

/** Pure: what prevResult says the pod interface must look like. */
export function expectedFromPrev(prev: Result, ifname: string, netns: string, mtu: number): Expected {
  const interfaces = prev.interfaces ?? [];
  const index = interfaces.findIndex((i) => i.name === ifname && (!i.sandbox || i.sandbox === netns));
  if (index < 0) {
    throw new CniError(ErrorCode.CheckFailed, `prevResult lists no interface ${ifname} in ${netns}`);
  }
  return {
    iface: interfaces[index]!,
    addresses: (prev.ips ?? []).filter((ip) => ip.interface === index).map((ip) => ip.address),
    routes: (prev.routes ?? []).filter((r) => !r.dst.includes(':')),
    mtu,
  };
}

function sameDst(kernel: string, wanted: string): boolean {
  const norm = (d: string) => (d === 'default' || d === '0.0.0.0/0' ? 'default' : d.endsWith('/32') ? d.slice(0, -3) : d);
  return norm(kernel) === norm(wanted);
}

/** Pure: every difference between the kernel's view and the expectation (empty = fine). */
export function podProblems(expected: Expected, link: LinkJson | undefined, routes: RouteJson[]): string[] {
  const name = expected.iface.name;
  if (!link) return [`interface ${name} does not exist in the pod's netns`];
  const problems: string[] = [];
  if (link.linkinfo?.info_kind !== 'veth') problems.push(`${name} is a ${link.linkinfo?.info_kind ?? 'non-veth'} device, not a veth`);
  if (expected.iface.mac && link.address?.toLowerCase() !== expected.iface.mac.toLowerCase()) {
    problems.push(`${name} has MAC ${link.address}, prevResult says ${expected.iface.mac}`);
  }
  if (link.mtu !== expected.mtu) problems.push(`${name} has MTU ${link.mtu}, the config says ${expected.mtu}`);
  if (!link.flags?.includes('UP')) problems.push(`${name} is down`);
  const have = (link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  for (const a of expected.addresses) if (!have.includes(a)) problems.push(`${name} lacks address ${a} (has ${have.join(', ') || 'none'})`);
  for (const r of expected.routes) {
    if (!routes.some((k) => sameDst(k.dst, r.dst) && (!r.gw || k.gateway === r.gw))) {
      problems.push(`route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} on ${name} is missing`);
    }
  }
  return problems;
}

/** Pure: host end attached and up, bridge up with every gateway address. */
export function nodeProblems(hostVeth: string, host: LinkJson | undefined, bridgeName: string, bridge: LinkJson | undefined, gateways: string[]): string[] {
  const problems: string[] = [];
  if (!host) problems.push(`host interface ${hostVeth} does not exist`);
  else {
    if (host.master !== bridgeName) problems.push(`${hostVeth} is attached to ${host.master ?? 'nothing'}, not ${bridgeName}`);
    if (!host.flags?.includes('UP')) problems.push(`${hostVeth} is down`);
  }
  if (!bridge) return [...problems, `bridge ${bridgeName} does not exist`];
  if (!bridge.flags?.includes('UP')) problems.push(`bridge ${bridgeName} is down`);
  const have = (bridge.addr_info ?? []).map((a) => a.local);
  for (const gw of gateways) if (!have.includes(gw)) problems.push(`bridge ${bridgeName} lacks gateway address ${gw}`);
  return problems;
}

export function check(call: Call): void {
  const { inv, config, deps } = call;
  const prev = config.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'CHECK needs prevResult (the Result of the ADD being checked)');
  if (!deps.exists(inv.netns)) throw new CniError(ErrorCode.CheckFailed, `network namespace ${inv.netns} does not exist`);
  const expected = expectedFromPrev(prev, inv.ifname, inv.netns, config.mtu);
  call.deps.ipam(call).check(prev);
  const pod = deps.links.inspectPod(inv.netns, inv.ifname);
  const hostVeth = hostVethName(inv.containerId, inv.ifname);
  const gateways = [...new Set((prev.ips ?? []).flatMap((ip) => (ip.gateway ? [ip.gateway] : [])))];
  const problems = [
    ...podProblems(expected, pod.link, pod.routes),
    ...nodeProblems(hostVeth, deps.links.inspectNode(hostVeth), config.bridge, deps.links.inspectNode(config.bridge), gateways),
  ];
  if (problems.length) {
    throw new CniError(ErrorCode.CheckFailed, `container ${inv.containerId} ${inv.ifname}: ${problems.join('; ')}`);
  }
}
