// ADD: address from IPAM, then veth pair + bridge + address + routes over netlink, then
// the Result in the runtime's cniVersion. Any failure after the address was taken gives
// it back (and Links removes a half-built veth), so a failed ADD leaves nothing behind.
import type { PluginConfig } from '../config.ts';
import type { Call } from '../context.ts';
import { parseCidr, formatIpv4 } from '../ipv4.ts';
import type { PodPlan } from '../kernel.ts';
import { hostVethAlias, hostVethName } from '../names.ts';
import type { Invocation } from '../spec/env.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { Result, Route } from '../spec/result.ts';

const DEFAULT_V4 = '0.0.0.0/0';

function isDefault(dst: string): boolean {
  return dst === DEFAULT_V4 || dst === 'default';
}

/** Gateway per address: the IPAM's, or (like the reference bridge) the subnet's first host. */
function gatewayOf(ip: { address: string; gateway?: string }): string | undefined {
  if (ip.gateway) return ip.gateway;
  const c = parseCidr(ip.address);
  return c.ok ? formatIpv4(c.cidr.network + 1) : undefined; // IPv6 without a gateway: none
}

export interface PodChoices {
  bridgeExists: boolean;
  bridgeMac: string;
  hostMac: string;
  containerMac: string;
}

/** Pure: what to create for this pod, from the config and the IPAM's answer. */
export function planPod(config: PluginConfig, inv: Invocation, ipam: Result, choices: PodChoices): PodPlan {
  const ips = ipam.ips ?? [];
  if (!ips.length) throw new CniError(ErrorCode.Internal, 'IPAM returned no address');
  const v4Gateway = ips
    .filter((ip) => !ip.address.includes(':'))
    .map(gatewayOf)
    .find(Boolean);
  const routes: { dst: string; gw: string }[] = [];
  for (const r of ipam.routes ?? []) {
    const gw = r.gw ?? (r.dst.includes(':') ? ips.find((ip) => ip.address.includes(':') && ip.gateway)?.gateway : v4Gateway);
    if (!gw) throw new CniError(ErrorCode.InvalidConfig, `IPAM route to ${r.dst} has no gateway and none can be derived`);
    routes.push({ dst: r.dst, gw });
  }
  if (config.isDefaultGateway && v4Gateway && !routes.some((r) => isDefault(r.dst))) {
    routes.push({ dst: DEFAULT_V4, gw: v4Gateway });
  }
  const gatewayCidrs = ips.flatMap((ip) => {
    const gw = gatewayOf(ip);
    return gw ? [`${gw}/${ip.address.split('/')[1]}`] : [];
  });
  const plan: PodPlan = {
    bridge: config.bridge,
    gatewayCidrs: [...new Set(gatewayCidrs)],
    hostVeth: hostVethName(inv.containerId, inv.ifname),
    hostMac: choices.hostMac,
    alias: hostVethAlias(inv.containerId, inv.ifname),
    ifname: inv.ifname,
    containerMac: choices.containerMac,
    netns: inv.netns,
    mtu: config.mtu,
    hairpin: config.hairpinMode,
    addresses: ips.map((ip) => ip.address),
    routes,
  };
  if (!choices.bridgeExists) plan.bridgeMac = choices.bridgeMac;
  return plan;
}

/** Pure: the ADD Result (interfaces[0] host veth, [1] the pod's interface). */
export function addResult(plan: PodPlan, ipam: Result, config: PluginConfig): Result {
  const routes: Route[] = plan.routes.map((r) => ({ dst: r.dst, gw: r.gw }));
  const result: Result = {
    interfaces: [
      { name: plan.hostVeth, mac: plan.hostMac },
      { name: plan.ifname, mac: plan.containerMac, mtu: plan.mtu, sandbox: plan.netns },
    ],
    ips: (ipam.ips ?? []).map((ip) => {
      const gw = gatewayOf(ip);
      return { address: ip.address, ...(gw ? { gateway: gw } : {}), interface: 1 };
    }),
    routes,
  };
  const dns = ipam.dns ?? (config.raw.dns as Result['dns'] | undefined);
  if (dns && typeof dns === 'object') result.dns = dns;
  return result;
}

export function add(call: Call): Result {
  const { inv, config, deps } = call;
  if (!deps.exists(inv.netns)) {
    throw new CniError(ErrorCode.UnknownContainer, `network namespace ${inv.netns} does not exist`);
  }
  const ipam = call.deps.ipam(call);
  const taken = ipam.add();
  try {
    const plan = planPod(config, inv, taken.result, {
      bridgeExists: deps.links.nodeLinks().has(config.bridge),
      bridgeMac: deps.mac(),
      hostMac: deps.mac(),
      containerMac: deps.mac(),
    });
    const { skippedRoutes } = deps.links.setUpPod(plan);
    // A default route another network had already set is not ours: leave it out of the Result.
    const installed = { ...plan, routes: plan.routes.filter((r) => !skippedRoutes.includes(r)) };
    return addResult(installed, taken.result, config);
  } catch (e) {
    try {
      taken.undo();
    } catch (undoError) {
      const err = e instanceof CniError ? e : new CniError(ErrorCode.Internal, String(e));
      throw new CniError(err.code, `${err.message}; releasing the address failed too: ${(undoError as Error).message}`, err.details);
    }
    throw e;
  }
}
