// The plan: every value any rendered file needs, derived once from the configuration.
// Pure (no I/O, clock or randomness). Renderers only format what is here, which is what
// makes "every CIDR, IP and name agrees across files" checkable in one place.
import type { ClusterConfig, Role, SshConfig } from '../config/defaults.ts';
import type { ImagePin, Versions } from '../config/pins.ts';
import { chooseSubnet } from './addressing.ts';
import { addressAt, cidr, formatCidr, formatIpv4, type Cidr } from './ipv4.ts';
import { podMtu, type EspMode } from './mtu.ts';

const APISERVER_PORT = 6443;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

export interface PlannedNode {
  name: string;
  role: Role;
  ip: string;
  /** This node's pod subnet, e.g. 10.240.1.0/24. */
  podSubnet: string;
  /** Address of the pod bridge and the pods' default gateway (first usable of podSubnet). */
  gateway: string;
  /** gateway with the subnet's prefix, as configured on the bridge (10.240.1.1/24). */
  gatewayCidr: string;
  /** Runs kubelet, kube-proxy and a container runtime (minions). */
  runsPods: boolean;
  /** IKE identity: the node name as an FQDN identity (`@minion1`). */
  ipsecId: string;
  /**
   * What this node's side of every CHILD_SA carries (leftsubnet): its pod subnet, and its
   * own address with ipsec.nodeEncryption.
   */
  selectors: string[];
  /** Every other node, in cluster order: one IPsec conn each. */
  peers: Peer[];
  vm: { memory: number; cpus: number };
  ssh?: SshConfig;
}

interface Peer {
  name: string;
  ip: string;
  podSubnet: string;
  ipsecId: string;
  /** The peer's side of the CHILD_SA (rightsubnet). */
  selectors: string[];
  /** strongSwan conn name, `<local>-<peer>`. */
  conn: string;
  /**
   * Whether this node sets the pair up (auto=start) or waits for the peer (auto=add). Exactly
   * one end of each pair initiates — the one whose name sorts first — so the two never build
   * an IKE_SA each at the same moment (strongSwan keeps both: two SA pairs per peer).
   */
  initiates: boolean;
}

/** One IPsec tunnel of the mesh; `a` < `b` by name so each pair appears once. */
interface Tunnel {
  a: string;
  b: string;
}

/** A container image as the nodes use it. */
export interface PlannedImage {
  /** repository:tag, as pinned. */
  image: string;
  /**
   * What manifests and runtime flags name: `image@digest` where nodes pull (the registry
   * verifies the content), plain `image` in an air-gapped install (the archive loaded into the
   * runtime carries the tag, not the registry digest; its image ID is verified instead).
   */
  ref: string;
  /** Pinned image ID (sha256 of the config), if any. */
  id?: string;
  /** File name of its archive in binaries.dir (`docker save -o <archive> <image>`). */
  archive: string;
}

type ImageName = 'coredns' | 'pause' | 'smoke';

export interface Plan {
  cluster: { name: string; domain: string };
  network: {
    nodeCidr: string;
    podCidr: string;
    serviceCidr: string;
    /** First address of the service range: the `kubernetes` service VIP. */
    kubernetesServiceIp: string;
    clusterDns: string;
    bridge: string;
    underlayMtu: number;
    podMtu: number;
    nodeSubnetPrefix: number;
    /**
     * kube-proxy's masquerade bit (KubeProxyConfiguration iptables.masqueradeBit; its default,
     * 14): KUBE-MARK-MASQ sets it on service traffic that KUBE-POSTROUTING will MASQUERADE.
     * The node network gives such packets bound for a remote pod the bridge address instead,
     * before kube-proxy's MASQUERADE can give them the node's (which no IPsec selector holds).
     */
    masqueradeBit: number;
  };
  nodes: PlannedNode[];
  master: PlannedNode;
  minions: PlannedNode[];
  tunnels: Tunnel[];
  runtime: ClusterConfig['runtime'];
  versions: Versions;
  images: Record<ImageName, PlannedImage>;
  binariesDir?: string;
  /** binaries.allowAbsent: archives missing from binariesDir leave their units installed but idle. */
  binariesAllowAbsent: boolean;
  ipsec: ClusterConfig['ipsec'] & { espMode: EspMode };
  pki: ClusterConfig['pki'];
  apiserver: {
    url: string;
    /** Loopback URL the control plane on the master uses. */
    localUrl: string;
    sans: { dns: string[]; ips: string[] };
  };
  /**
   * etcd serves the API server on the master and nothing else: clients on loopback only. Its
   * peer listener (etcd always has one) is on the node address only when there are peers.
   */
  etcd: { clientUrl: string; peerUrl: string; members: { name: string; peerUrl: string }[] };
  vagrant: ClusterConfig['vagrant'];
}

/** kube-proxy's default --iptables-masquerade-bit (pkg/proxy/apis/config/v1alpha1/defaults.go): mark 0x4000. */
export const KUBE_PROXY_MASQUERADE_BIT = 14;

/** The packet mark of a masquerade bit, as iptables and nft write it ("0x4000"). */
export const masqueradeMark = (bit: number): string => `0x${(1 << bit).toString(16)}`;

export function planCluster(config: ClusterConfig): Plan {
  const podCidr = cidr(config.network.podCidr);
  // Air-gapped (binaries.dir): images travel as archives, and manifests name them by tag.
  const airGapped = config.binaries.dir !== undefined;
  const prefix = config.network.nodeSubnetPrefix;
  const subnets = config.nodes.map((n) => {
    const choice = chooseSubnet(n, podCidr, prefix);
    // validate.ts rejects every config where this can happen.
    if (!choice.ok) throw new Error(`internal: no pod subnet for ${n.name} (config not validated?)`);
    return choice.subnet;
  });
  const ipsecId = (name: string) => `@${name}`;
  const base = config.nodes.map((n, i) => ({ config: n, subnet: subnets[i]! }));
  const selectors = (n: { config: { ip: string }; subnet: Cidr }) => [formatCidr(n.subnet), ...(config.ipsec.nodeEncryption ? [`${n.config.ip}/32`] : [])];

  const nodes: PlannedNode[] = base.map(({ config: n, subnet }) => {
    const gateway = firstUsable(subnet);
    return {
      name: n.name,
      role: n.role,
      ip: n.ip,
      podSubnet: formatCidr(subnet),
      gateway: formatIpv4(gateway),
      gatewayCidr: `${formatIpv4(gateway)}/${subnet.prefix}`,
      runsPods: n.role === 'minion',
      ipsecId: ipsecId(n.name),
      selectors: selectors({ config: n, subnet }),
      peers: base
        .filter((other) => other.config.name !== n.name)
        .map((other) => ({
          name: other.config.name,
          ip: other.config.ip,
          podSubnet: formatCidr(other.subnet),
          ipsecId: ipsecId(other.config.name),
          selectors: selectors(other),
          conn: `${n.name}-${other.config.name}`,
          initiates: initiatorOf(n.name, other.config.name) === n.name,
        })),
      vm: { memory: n.memory, cpus: n.cpus },
      ...(n.ssh && { ssh: n.ssh }),
    };
  });
  const master = nodes.find((n) => n.role === 'master');
  if (!master) throw new Error('internal: no master (config not validated?)');

  const service = cidr(config.network.serviceCidr);
  const kubernetesServiceIp = formatIpv4(firstUsable(service));
  const domain = config.cluster.domain;
  return {
    cluster: { ...config.cluster },
    network: {
      nodeCidr: config.network.nodeCidr,
      podCidr: config.network.podCidr,
      serviceCidr: config.network.serviceCidr,
      kubernetesServiceIp,
      clusterDns: config.network.clusterDns,
      bridge: config.network.bridge,
      underlayMtu: config.network.underlayMtu,
      podMtu: podMtu(config.network.underlayMtu, config.ipsec.espMode, config.network.podMtu, config.ipsec.esp),
      masqueradeBit: KUBE_PROXY_MASQUERADE_BIT,
      nodeSubnetPrefix: prefix,
    },
    nodes,
    master,
    minions: nodes.filter((n) => n.role === 'minion'),
    tunnels: meshPairs(nodes.map((n) => n.name)),
    runtime: config.runtime,
    versions: config.versions,
    images: {
      coredns: planImage(config.versions.images.coredns, airGapped),
      pause: planImage(config.versions.images.pause, airGapped),
      smoke: planImage(config.versions.images.smoke, airGapped),
    },
    ...(config.binaries.dir !== undefined && { binariesDir: config.binaries.dir }),
    binariesAllowAbsent: config.binaries.allowAbsent === true,
    ipsec: { ...config.ipsec },
    pki: { ...config.pki },
    apiserver: {
      url: `https://${master.ip}:${APISERVER_PORT}`,
      localUrl: `https://127.0.0.1:${APISERVER_PORT}`,
      sans: {
        dns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${domain}`, master.name, 'localhost'],
        ips: [kubernetesServiceIp, master.ip, '127.0.0.1'],
      },
    },
    etcd: etcdPlan([master]),
    vagrant: { ...config.vagrant },
  };
}

/** etcd on each control-plane node; one today (validate.ts allows one master). */
export function etcdPlan(members: PlannedNode[]): Plan['etcd'] {
  const peerUrl = (n: PlannedNode) => `https://${members.length > 1 ? n.ip : '127.0.0.1'}:${ETCD_PEER_PORT}`;
  return {
    clientUrl: `https://127.0.0.1:${ETCD_CLIENT_PORT}`,
    peerUrl: peerUrl(members[0]!),
    members: members.map((n) => ({ name: n.name, peerUrl: peerUrl(n) })),
  };
}

/** `registry.k8s.io/e2e-test-images/agnhost:2.53` → `agnhost-2.53.tar`. */
export function imageArchiveName(image: string): string {
  const lastSlash = image.lastIndexOf('/');
  const [name, tag] = image.slice(lastSlash + 1).split(':') as [string, string];
  return `${name}-${tag}.tar`;
}

function planImage(pin: ImagePin, airGapped: boolean): PlannedImage {
  const ref = !airGapped && pin.digest ? `${pin.image}@${pin.digest}` : pin.image;
  return { image: pin.image, ref, ...(pin.id !== undefined && { id: pin.id }), archive: imageArchiveName(pin.image) };
}

function firstUsable(c: Cidr): number {
  return addressAt(c, 1);
}

/** The end of a pair that initiates its IKE_SA: the name that sorts first (the pair's `a`). */
function initiatorOf(x: string, y: string): string {
  return x < y ? x : y;
}

/** Every unordered pair once, names sorted inside each pair: the tunnels of a full mesh. */
function meshPairs(names: string[]): Tunnel[] {
  const out: Tunnel[] = [];
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const [a, b] = [names[i]!, names[j]!].sort();
      out.push({ a: a!, b: b! });
    }
  }
  return out;
}
