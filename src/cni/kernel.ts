// What the plugin plans for, and sees of, the kernel: pure types and conversions shared by
// the commands (which reason about them, unit-tested) and links.ts (which talks to the kernel).
import type { Addr, Link } from './netlink/wire.ts';

/** Everything ADD needs to wire one pod. */
export interface PodPlan {
  bridge: string;
  /** Set only when the bridge must be created (fixed MAC: see names.ts randomMac). */
  bridgeMac?: string;
  /** "10.240.1.1/24" per gateway the bridge must own. */
  gatewayCidrs: string[];
  hostVeth: string;
  hostMac: string;
  alias: string;
  ifname: string;
  containerMac: string;
  netns: string;
  mtu: number;
  hairpin: boolean;
  /** "10.240.1.5/24" */
  addresses: string[];
  routes: { dst: string; gw: string }[];
}

/** Link names in the calling process's netns (/proc/self/net/dev: no netlink round trip). */
export function parseNetDev(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon > 0) names.add(line.slice(0, colon).trim());
  }
  return names;
}

/** The iproute2-JSON-like view CHECK and GC reason about (pure code in commands/). */
export interface LinkJson {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
}

export function toLinkJson(link: Link, names: Map<number, string>, addrs: Addr[] = []): LinkJson {
  const j: LinkJson = { ifname: link.name, flags: link.up ? ['UP'] : [] };
  if (link.mac) j.address = link.mac;
  if (link.mtu !== undefined) j.mtu = link.mtu;
  if (link.master !== undefined) j.master = names.get(link.master) ?? String(link.master);
  if (link.alias) j.ifalias = link.alias;
  if (link.kind) j.linkinfo = { info_kind: link.kind };
  j.addr_info = addrs
    .filter((a) => a.index === link.index)
    .map((a) => ({ family: a.address.includes(':') ? 'inet6' : 'inet', local: a.address, prefixlen: a.prefix }));
  return j;
}
