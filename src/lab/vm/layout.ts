// Where the VM lab's machines sit (pure): each node a VM with two NICs, like a Vagrant box —
// a management NIC (the provisioner's and the lab's ssh, like Vagrant's NAT interface) and
// the cluster's private network (the underlay, the node's real IP). Both are tap devices
// created inside the lab's wire namespace, each on its own bridge there:
//
//   <p>-wire   <p>-br  underlay bridge: <p>-v<i>u taps + the upstream router's veth
//              <p>-mg  management bridge (holds the host's management address): <p>-v<i>m taps
//
// Nothing is in the root namespace; ssh runs inside the wire namespace.
import type { Plan } from '../../plan/plan.ts';
import { addressAt, cidr, formatCidr, formatIpv4, overlaps, type Cidr } from '../../plan/ipv4.ts';
import type { LabTopology } from '../topology.ts';

export interface VmNode {
  name: string;
  index: number;
  /** Management address (sshd) without and with its prefix length. */
  mgmtIp: string;
  mgmtAddress: string;
  mgmtMac: string;
  mgmtTap: string;
  underlayMac: string;
  underlayTap: string;
  memoryMb: number;
  cpus: number;
}

export interface VmLayout {
  mgmt: { bridge: string; cidr: string; hostIp: string; hostAddress: string };
  nodes: VmNode[];
}

/** Management networks tried in order: the first that overlaps none of the cluster's ranges. */
const MGMT_CANDIDATES = ['100.64.10.0/24', '100.127.10.0/24', '172.31.254.0/24', '10.255.254.0/24'];

export function managementNetwork(plan: Plan): Cidr {
  const taken = [plan.network.nodeCidr, plan.network.podCidr, plan.network.serviceCidr].map(cidr);
  for (const c of MGMT_CANDIDATES.map(cidr)) if (!taken.some((t) => overlaps(t, c))) return c;
  throw new Error(`every management network the VM lab knows (${MGMT_CANDIDATES.join(', ')}) overlaps the cluster's ranges`);
}

/** A locally administered MAC (QEMU's 52:54:00 prefix): role 0 management, 1 underlay. */
export function macOf(role: 0 | 1, index: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `52:54:00:${hex(0xa0 + role)}:${hex((index >> 8) & 255)}:${hex(index & 255)}`;
}

/**
 * The VMs of the lab: each node's memory and CPUs as cluster.yaml sizes its Vagrant VM
 * (nodes[].memory/cpus, vagrant.memory/cpus), unless `memoryMb` overrides every VM's memory.
 */
export function vmLayout(plan: Plan, t: LabTopology, memoryMb?: number): VmLayout {
  const mgmt = managementNetwork(plan);
  if (t.nodes.length > 250) throw new Error(`the VM lab runs at most 250 VMs, not ${t.nodes.length}`);
  const link = (suffix: string) => {
    const name = `${t.prefix}-${suffix}`;
    if (name.length > 15) throw new Error(`internal: link name ${name} is longer than 15 characters`);
    return name;
  };
  const hostIp = formatIpv4(addressAt(mgmt, 1));
  return {
    mgmt: { bridge: link('mg'), cidr: formatCidr(mgmt), hostIp, hostAddress: `${hostIp}/${mgmt.prefix}` },
    nodes: t.nodes.map((n, index) => {
      const ip = formatIpv4(addressAt(mgmt, 10 + index));
      const planned = plan.nodes.find((p) => p.name === n.name)!.vm;
      return {
        name: n.name,
        index,
        mgmtIp: ip,
        mgmtAddress: `${ip}/${mgmt.prefix}`,
        mgmtMac: macOf(0, index),
        mgmtTap: link(`v${index}m`),
        underlayMac: macOf(1, index),
        underlayTap: link(`v${index}u`),
        memoryMb: memoryMb ?? planned.memory,
        cpus: planned.cpus,
      };
    }),
  };
}

export function vmNamed(layout: VmLayout, name: string): VmNode {
  const v = layout.nodes.find((n) => n.name === name);
  if (!v) throw new Error(`no VM ${name} in the lab (VMs: ${layout.nodes.map((n) => n.name).join(', ')})`);
  return v;
}

/**
 * `ip -batch` lines, run inside the wire namespace: the underlay bridge with the upstream
 * router's veth (its far end created directly in the upstream namespace), the management
 * bridge with the host's address, and two taps per VM on their bridges.
 */
export function vmWireBatch(t: LabTopology, layout: VmLayout): string[] {
  const mtu = t.underlayMtu;
  const br = t.wire.bridge;
  const up = t.upstream;
  return [
    'link set lo up',
    `link add ${br} mtu ${mtu} type bridge`,
    `link set ${br} up`,
    `link add ${up.port} mtu ${mtu} master ${br} up type veth peer name ${up.dev} mtu ${mtu} netns ${up.ns}`,
    `link add ${layout.mgmt.bridge} type bridge`,
    `addr add ${layout.mgmt.hostAddress} dev ${layout.mgmt.bridge}`,
    `link set ${layout.mgmt.bridge} up`,
    ...layout.nodes.flatMap((v) => [
      `tuntap add mode tap name ${v.mgmtTap}`,
      `link set ${v.mgmtTap} master ${layout.mgmt.bridge} up`,
      `tuntap add mode tap name ${v.underlayTap}`,
      `link set ${v.underlayTap} mtu ${mtu} master ${br} up`,
    ]),
  ];
}

/** Every tap of the lab. */
export function labTaps(layout: VmLayout): string[] {
  return layout.nodes.flatMap((v) => [v.mgmtTap, v.underlayTap]);
}

export interface SeedKeys {
  /** The VM's ssh host private key (OpenSSH format) and public key line. */
  hostKey: string;
  hostKeyPub: string;
  /** The lab's client public key line, for root's authorized_keys. */
  authorizedKey: string;
}

/**
 * The VM's identity as its image's kube-ipsec-vm-seed reads it from fw_cfg: one KEY=value
 * per line (the host key base64-encoded on one line).
 */
export function seedText(t: LabTopology, layout: VmLayout, node: string, keys: SeedKeys): string {
  const v = vmNamed(layout, node);
  const n = t.nodes.find((x) => x.name === node)!;
  const line = (s: string) => {
    if (/[\n\r]/.test(s)) throw new Error(`seed value for ${node} spans lines: ${JSON.stringify(s)}`);
    return s;
  };
  return [
    `HOSTNAME=${node}`,
    `MGMT_MAC=${v.mgmtMac}`,
    `MGMT_ADDRESS=${v.mgmtAddress}`,
    `UNDERLAY_MAC=${v.underlayMac}`,
    `UNDERLAY_ADDRESS=${n.address}`,
    `UNDERLAY_MTU=${t.underlayMtu}`,
    `GATEWAY=${t.upstream.ip}`,
    `HOST_KEY=${Buffer.from(keys.hostKey).toString('base64')}`,
    `HOST_KEY_PUB=${line(keys.hostKeyPub.trim())}`,
    `AUTHORIZED_KEY=${line(keys.authorizedKey.trim())}`,
    '',
  ].join('\n');
}
