// The string formats cluster.yaml's schema names, shared by the generated validator
// (structure.generated.ts) and anything else that checks addresses. A format whose failure
// needs more words than "has the wrong form" also says why (formatProblem): the key's
// message then names the offending part and the fix.
import { parseCidr, parseIpv4 } from '../plan/ipv4.ts';
import { proposalProblem } from './proposals.ts';

/** A pod bridge name: a Linux interface name (IFNAMSIZ − 1 bytes) that no command line reads as an option. */
export const BRIDGE_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]{0,14}$';

export const formats: Record<string, (value: string) => boolean> = {
  ipv4: (s) => parseIpv4(s) !== undefined,
  'ipv4-cidr': (s) => parseCidr(s).ok,
  'ike-proposals': (s) => proposalProblem('ike', s) === undefined,
  'esp-proposals': (s) => proposalProblem('esp', s) === undefined,
  'pod-bridge': (s) => bridgeNameProblem(s) === undefined,
};

/** Why `value` is not a `format`, for the formats that can say more than "has the wrong form". */
export function formatProblem(format: string, value: string): { problem: string; fix: string } | undefined {
  switch (format) {
    case 'ike-proposals':
    case 'esp-proposals':
      return proposalProblem(format === 'ike-proposals' ? 'ike' : 'esp', value);
    case 'pod-bridge':
      return bridgeNameProblem(value);
    default:
      return undefined;
  }
}

/**
 * Interfaces a node has, or gets, besides the pod bridge. The bridge's name is allowed out
 * of the node network's guard (node-network.nft: `oifname { "lo", <bridge> } accept`), so a
 * bridge named like the underlay NIC would let every packet leave in clear, and one named
 * like another device would be that device (`ip link add` fails, or the script configures
 * the wrong one).
 */
const TAKEN_NAMES: [RegExp, string][] = [
  [/^lo$/, 'the loopback interface'],
  [/^(all|default)$/, 'a name the kernel reserves (net.ipv4.conf.all / .default are settings, not devices)'],
  // Kernel names of NICs, and udev's predictable ones (systemd.net-naming-scheme(7): en
  // Ethernet, wl WLAN, ww WWAN, ib InfiniBand, sl SLIP). The Vagrant boxes' NAT and private
  // network NICs are eth0/eth1, or enp0s3/enp0s8 (VirtualBox), ens5/ens6 (libvirt).
  [
    /^(eth|en|wl|ww|ib|sl|usb)/,
    "a network card's name (eth*, en*, wl*, ww*, ib*, sl*, usb*): on a Vagrant VM eth1 or enp0s8 is the underlay, which the guard would then let traffic out of in clear",
  ],
  [/^veth/, "the prefix of the pods' veth interfaces (the CNI plugin names each veth<hash>)"],
  [/^ipsec\d+$/, "strongSwan's userspace ESP device (kernel-libipsec creates ipsec0)"],
  // Fallback devices the kernel creates when a tunnel module loads (ip_vti for IPsec, ipip,
  // sit, gre, ip6_tunnel, ip6_gre).
  [/^(ip_vti0|ip6_vti0|tunl0|sit0|ip6tnl0|gre0|gretap0|erspan0|ip6gre0|ip6erspan0)$/, 'a device the kernel creates when its tunnel module loads'],
  [
    /^(docker0|cni0|cni-podman\d+|podman\d+|kube-ipvs0|nodelocaldns|flannel\.\d+|cilium_.*|cali.*|br-[0-9a-f]+)$/,
    'a device that container runtimes or other Kubernetes networks create',
  ],
];

/** Why `name` cannot be the pod bridge, or undefined if it can. */
function bridgeNameProblem(name: string): { problem: string; fix: string } | undefined {
  const fix = 'name a bridge of its own, e.g. ipsec-br01 (the default)';
  if (!new RegExp(BRIDGE_NAME_PATTERN).test(name)) {
    return { problem: 'is not an interface name: a letter, then letters, digits, _ . or -; at most 15 characters', fix };
  }
  const taken = TAKEN_NAMES.find(([re]) => re.test(name));
  return taken ? { problem: `is ${taken[1]}`, fix } : undefined;
}
