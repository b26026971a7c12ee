// The resolved configuration: cluster.yaml with every default filled in. Defaults are the
// seeds' topology (master 192.168.10.10, minions .21-.23, pods 10.240.0.0/16 split in /24s,
// services 10.30.0.0/24, DNS 10.30.0.10, bridge ipsec-br01) and the pinned releases.
import type { RawClusterConfig } from './schema.ts';
import { PINNED, type Versions } from './pins.ts';

export type Role = 'master' | 'minion';

export interface SshConfig {
  host?: string;
  port?: number;
  user?: string;
  privateKey?: string;
  hostKey?: string;
}

export interface NodeConfig {
  name: string;
  role: Role;
  ip: string;
  podSubnet?: string;
  memory: number;
  cpus: number;
  ssh?: SshConfig;
}

export interface ClusterConfig {
  cluster: { name: string; domain: string };
  network: {
    nodeCidr: string;
    podCidr: string;
    nodeSubnetPrefix: number;
    serviceCidr: string;
    clusterDns: string;
    bridge: string;
    underlayMtu: number;
    podMtu?: number;
  };
  nodes: NodeConfig[];
  runtime: 'docker' | 'containerd';
  versions: Versions;
  binaries: { dir?: string; allowAbsent?: boolean };
  ipsec: {
    auth: 'pubkey' | 'psk';
    ike: string;
    esp: string;
    ikeLifetime: string;
    lifetime: string;
    rekeyMargin: string;
    dpdDelay: string;
    /** Node addresses in the selectors too: node↔node traffic through ESP (kernel ESP only). */
    nodeEncryption: boolean;
    espMode: 'kernel' | 'userspace';
  };
  pki: {
    keyAlgorithm: 'ecdsa-p256' | 'rsa-2048';
    caValidityDays: number;
    certValidityDays: number;
    renewBeforeDays: number;
  };
  vagrant: {
    box: string;
    memory: number;
    cpus: number;
    libvirt: { box?: string; driver?: 'kvm' | 'qemu'; cpuMode?: 'host-passthrough' | 'host-model' | 'maximum' | 'custom'; cpuModel?: string };
    virtualbox: { box?: string };
  };
}

export const DEFAULTS = {
  cluster: { name: 'kube-ipsec', domain: 'cluster.local' },
  network: {
    nodeCidr: '192.168.10.0/24',
    podCidr: '10.240.0.0/16',
    nodeSubnetPrefix: 24,
    serviceCidr: '10.30.0.0/24',
    clusterDns: '10.30.0.10',
    bridge: 'ipsec-br01',
    underlayMtu: 1500,
  },
  runtime: 'docker',
  versions: PINNED,
  ipsec: {
    auth: 'pubkey',
    // AES-GCM is an AEAD: one pass for encryption and integrity, accelerated by AES-NI.
    ike: 'aes128gcm16-prfsha256-ecp256!',
    esp: 'aes128gcm16-ecp256!',
    ikeLifetime: '3h',
    lifetime: '1h',
    rekeyMargin: '9m',
    dpdDelay: '5s',
    nodeEncryption: false,
    espMode: 'kernel',
  },
  pki: { keyAlgorithm: 'ecdsa-p256', caValidityDays: 3650, certValidityDays: 365, renewBeforeDays: 30 },
  vagrant: { box: 'debian/bookworm64', memory: 2048, cpus: 2, libvirt: {}, virtualbox: {} },
} as const satisfies Omit<ClusterConfig, 'nodes' | 'binaries'>;

/** Fills every default into a structurally valid cluster.yaml. */
export function applyDefaults(raw: RawClusterConfig): ClusterConfig {
  const vagrant = { ...DEFAULTS.vagrant, ...raw.vagrant, libvirt: { ...raw.vagrant?.libvirt }, virtualbox: { ...raw.vagrant?.virtualbox } };
  return {
    cluster: { ...DEFAULTS.cluster, ...raw.cluster },
    network: { ...DEFAULTS.network, ...raw.network },
    nodes: raw.nodes.map((n) => ({
      name: n.name,
      role: n.role ?? 'minion',
      ip: n.ip,
      ...(n.podSubnet !== undefined && { podSubnet: n.podSubnet }),
      memory: n.memory ?? vagrant.memory,
      cpus: n.cpus ?? vagrant.cpus,
      ...(n.ssh !== undefined && { ssh: { ...n.ssh } }),
    })),
    runtime: raw.runtime ?? DEFAULTS.runtime,
    // Each release entry (and each image) is replaced whole: mixing a version with another's
    // checksum is never right.
    versions: { ...DEFAULTS.versions, ...raw.versions, images: { ...DEFAULTS.versions.images, ...raw.versions?.images } },
    binaries: { ...raw.binaries },
    ipsec: { ...DEFAULTS.ipsec, ...raw.ipsec },
    pki: { ...DEFAULTS.pki, ...raw.pki },
    vagrant,
  };
}
