// The kernel work: bridge, veth pair, addresses, routes, over rtnetlink in-process
// (netlink/socket.ts); nothing is spawned. Measured here, each `ip -batch` process cost
// ~3 ms and the plugin needed two per ADD. Message layouts live in netlink/wire.ts (pure,
// unit-tested); this file owns the order of the steps and the rollback rules.
import { readText } from './sys/fs.ts';
import { CniError, ErrorCode } from './spec/errors.ts';
import { Errno, SysError } from './sys/libc.ts';
import { Netlink, closeFd, openNetns } from './netlink/socket.ts';
import { AF_INET, delLink, newAddr, newBridge, newRoute, newVethPair, setHairpin, setLink } from './netlink/wire.ts';
import { parseNetDev, toLinkJson, type LinkJson, type PodPlan, type RouteJson } from './kernel.ts';

export type { LinkJson, PodPlan, RouteJson } from './kernel.ts';

const isDefault = (dst: string) => dst === 'default' || dst === '0.0.0.0/0' || dst === '::/0';

function sysErrno(e: unknown): number | undefined {
  return e instanceof SysError ? e.errno : undefined;
}

/** Runs `f` with a netlink socket in `netns`; closes both. Throws SysError from openNetns. */
function inNetns<T>(netns: string, f: (nl: Netlink, fd: number) => T): T {
  const fd = openNetns(netns);
  let nl: Netlink | undefined;
  try {
    nl = Netlink.inside(fd);
    return f(nl, fd);
  } finally {
    nl?.close();
    closeFd(fd);
  }
}

function withNode<T>(f: (nl: Netlink) => T): T {
  const nl = Netlink.here();
  try {
    return f(nl);
  } finally {
    nl.close();
  }
}

export class Links {
  constructor(private readonly netDevPath = '/proc/self/net/dev') {}

  nodeLinks(): Set<string> {
    return parseNetDev(readText(this.netDevPath) ?? '');
  }

  /**
   * ADD's kernel work, ordered so that a kill at any point leaves something DEL or GC
   * recognises, and a pod-side problem leaves nothing at all:
   *   1. enter the pod's netns and check the interface name is free (fails before anything
   *      exists: name taken, netns gone or not a netns);
   *   2. ensure the bridge (created if missing; its gateway and "up" re-asserted on every ADD,
   *      so a bridge whose creator died half-way is repaired by the next pod);
   *   3. create the veth pair already attached and up, the peer born inside the pod's netns
   *      under its final name (no rename, no move, which would flush addresses): from its
   *      first instant the host end sits on our bridge under a name derived from the
   *      attachment, which is what GC matches;
   *   4. alias (the kernel ignores one given at creation) and hairpin;
   *   5. pod side: addresses, up, routes.
   * On failure whatever this call created (the veth) is removed and CniError 100 thrown.
   * Returns the routes skipped because the pod already had them (a default route set up by
   * another network).
   */
  setUpPod(plan: PodPlan): { skippedRoutes: { dst: string; gw: string }[] } {
    let nsFd: number;
    try {
      nsFd = openNetns(plan.netns);
    } catch (e) {
      throw new CniError(ErrorCode.LinkSetup, `cannot open network namespace ${plan.netns}: ${(e as Error).message}`);
    }
    const node = Netlink.here();
    let pod: Netlink | undefined;
    let created = false;
    let step = `checking ${plan.ifname} in ${plan.netns}`;
    try {
      try {
        pod = Netlink.inside(nsFd);
      } catch (e) {
        throw new CniError(ErrorCode.LinkSetup, `cannot enter network namespace ${plan.netns}: ${(e as Error).message}`);
      }
      if (pod.link(plan.ifname)) throw new CniError(ErrorCode.LinkSetup, `interface ${plan.ifname} already exists in ${plan.netns}`);

      step = `setting up bridge ${plan.bridge}`;
      let bridge = node.link(plan.bridge);
      if (!bridge && plan.bridgeMac) {
        try {
          node.do(newBridge(plan.bridge, plan.bridgeMac));
        } catch (e) {
          if (sysErrno(e) !== Errno.EEXIST) throw e; // another ADD created it meanwhile: use theirs
        }
        bridge = node.link(plan.bridge);
      }
      if (!bridge) throw new SysError(Errno.ENODEV, `bridge ${plan.bridge} does not exist`);
      if (bridge.kind !== 'bridge') throw new SysError(Errno.EINVAL, `${plan.bridge} exists but is a ${bridge.kind ?? 'non-bridge'} device`);
      for (const gw of plan.gatewayCidrs) node.do(newAddr(bridge.index, gw, true));
      if (!bridge.up) node.do(setLink(bridge.index, { up: true }));

      step = `creating veth pair ${plan.hostVeth}/${plan.ifname}`;
      try {
        node.do(
          newVethPair({
            host: plan.hostVeth,
            hostMac: plan.hostMac,
            master: bridge.index,
            peer: plan.ifname,
            peerMac: plan.containerMac,
            mtu: plan.mtu,
            peerNetnsFd: nsFd,
          }),
        );
      } catch (e) {
        if (sysErrno(e) === Errno.EEXIST) {
          throw new CniError(
            ErrorCode.LinkSetup,
            this.nodeLinks().has(plan.hostVeth)
              ? `host interface ${plan.hostVeth} already exists (an earlier ADD of this container and interface was not followed by DEL)`
              : `interface ${plan.ifname} already exists in ${plan.netns}`,
          );
        }
        throw e;
      }
      created = true;
      step = `configuring ${plan.hostVeth}`;
      const host = node.link(plan.hostVeth);
      if (!host) throw new SysError(Errno.ENODEV, `${plan.hostVeth} vanished after creation`);
      node.do(setLink(host.index, { alias: plan.alias }));
      if (plan.hairpin) node.do(setHairpin(host.index, true));

      step = `configuring ${plan.ifname} in ${plan.netns}`;
      const ifc = pod.link(plan.ifname);
      if (!ifc) throw new SysError(Errno.ENODEV, `${plan.ifname} is missing in ${plan.netns}`);
      for (const a of plan.addresses) pod.do(newAddr(ifc.index, a, false));
      pod.do(setLink(ifc.index, { up: true }));
      const skippedRoutes: { dst: string; gw: string }[] = [];
      for (const r of plan.routes) {
        try {
          pod.do(newRoute(r.dst, r.gw, ifc.index));
        } catch (e) {
          // Spec: "another network might have already configured the default route, the
          // plugin should be prepared to skip over its default route definition".
          if (sysErrno(e) === Errno.EEXIST && isDefault(r.dst)) skippedRoutes.push(r);
          else throw e;
        }
      }
      return { skippedRoutes };
    } catch (e) {
      const why = e instanceof CniError ? e.message : `${step} failed: ${(e as Error).message}`;
      if (created) this.rollback(node, plan, why);
      throw e instanceof CniError ? e : new CniError(ErrorCode.LinkSetup, why);
    } finally {
      pod?.close();
      node.close();
      closeFd(nsFd);
    }
  }

  /** Deleting the host end removes the pod end too (it is a pair). */
  private rollback(node: Netlink, plan: PodPlan, why: string): void {
    try {
      node.do(delLink(plan.hostVeth));
    } catch (e) {
      if (sysErrno(e) !== Errno.ENODEV) {
        throw new CniError(ErrorCode.LinkSetup, `${why}; rollback could not delete ${plan.hostVeth}: ${(e as Error).message}`);
      }
    }
  }

  /** DEL, pod side: 'absent' when the netns or the interface is already gone. */
  deletePodInterface(netns: string, ifname: string): 'deleted' | 'absent' {
    try {
      return inNetns(netns, (nl) => {
        nl.do(delLink(ifname));
        return 'deleted' as const;
      });
    } catch (e) {
      const n = sysErrno(e);
      // ENOENT: netns file gone; EINVAL: not a netns (any more); ENODEV: no such interface
      if (n === Errno.ENOENT || n === Errno.EINVAL || n === Errno.ENODEV) return 'absent';
      throw new CniError(ErrorCode.LinkSetup, `deleting ${ifname} in ${netns} failed: ${(e as Error).message}`);
    }
  }

  /** Veths of the node namespace, with their alias and bridge (GC, DEL fallback). */
  nodeVeths(): Map<string, LinkJson> {
    return withNode((nl) => {
      const all = nl.links();
      const names = new Map(all.map((l) => [l.index, l.name]));
      return new Map(all.filter((l) => l.kind === 'veth').map((l) => [l.name, toLinkJson(l, names)]));
    });
  }

  /** Deletes node links by name; ones already gone are fine. */
  deleteLinks(names: string[]): void {
    if (!names.length) return;
    withNode((nl) => {
      for (const n of names) {
        try {
          nl.do(delLink(n));
        } catch (e) {
          if (sysErrno(e) !== Errno.ENODEV) throw new CniError(ErrorCode.LinkSetup, `deleting ${n} failed: ${(e as Error).message}`);
        }
      }
    });
  }

  /**
   * Deletes host veths by name, but only those whose alias names the same attachment (or
   * that have none yet: an ADD stopped between creating and naming it; the hashed name is
   * ours). A name collision must never remove another pod's interface.
   */
  deleteHostVeths(wanted: { name: string; alias: string }[]): string[] {
    const present = this.nodeLinks();
    const candidates = wanted.filter((w) => present.has(w.name));
    if (!candidates.length) return [];
    const ours = withNode((nl) =>
      candidates.filter((c) => {
        const alias = nl.link(c.name)?.alias;
        return alias === undefined || alias === c.alias;
      }),
    );
    this.deleteLinks(ours.map((c) => c.name));
    return ours.map((c) => c.name);
  }

  /** CHECK, pod side: the interface with its addresses, and its IPv4 main-table routes. */
  inspectPod(netns: string, ifname: string): { link?: LinkJson; routes: RouteJson[] } {
    try {
      return inNetns(netns, (nl) => {
        const link = nl.link(ifname);
        if (!link) return { routes: [] };
        const names = new Map(nl.links().map((l) => [l.index, l.name]));
        const routes = nl
          .routes(AF_INET)
          .filter((r) => r.oif === link.index && r.table === 254)
          .map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: ifname }));
        return { link: toLinkJson(link, names, nl.addrs()), routes };
      });
    } catch (e) {
      if (e instanceof SysError) return { routes: [] };
      throw e;
    }
  }

  /** CHECK/STATUS, node side: one link with its addresses and master, or undefined. */
  inspectNode(name: string): LinkJson | undefined {
    if (!this.nodeLinks().has(name)) return undefined;
    return withNode((nl) => {
      const link = nl.link(name);
      if (!link) return undefined;
      const names = link.master !== undefined ? new Map(nl.links().map((l) => [l.index, l.name])) : new Map<number, string>();
      return toLinkJson(link, names, nl.addrs());
    });
  }
}
