// What a node installs besides rendered files: OS packages, pinned release archives (with
// their checksums and which member goes where) and the units to run, in bring-up order.
// Written into the node's tree (node.env, artifacts.tsv) for provision/ to act on.
import { basename } from 'node:path';
import type { Artifact } from '../config/pins.ts';
import { PATHS, UNITS } from '../plan/paths.ts';
import type { Plan, PlannedImage, PlannedNode } from '../plan/plan.ts';
import { runtimeUnits } from './context.ts';
import { file, GENERATED, type RenderedFile } from './files.ts';

export function componentBinary(name: string): string {
  return `${PATHS.binDir}/${name}`;
}

export interface ArtifactMember {
  /** Archive (or bare binary) to fetch. */
  artifact: Artifact;
  /** Path inside the archive, or `-` for a bare binary. */
  member: string;
  /** Where it is installed on the node (mode 0755). */
  dest: string;
}

/**
 * A Debian package given as a release archive (say Debian's own etcd-server, pinned by the
 * sha256 of its .deb from the archive's Packages index): members are paths in its data.
 */
export function isDebianPackage(artifact: Artifact): boolean {
  return artifact.url.endsWith('.deb');
}

export function artifactMembers(plan: Plan, node: PlannedNode): ArtifactMember[] {
  const v = plan.versions;
  const bin = (artifact: Artifact, member: string, name = member.split('/').pop()!) => ({ artifact, member, dest: componentBinary(name) });
  if (node.role === 'master') {
    const etcdDir = `etcd-${v.etcd.version}-linux-amd64`;
    // Debian splits etcd: etcd-server has the daemon, etcdctl is in etcd-client.
    const etcd = isDebianPackage(v.etcd.archive)
      ? [bin(v.etcd.archive, './usr/bin/etcd')]
      : [bin(v.etcd.archive, `${etcdDir}/etcd`), bin(v.etcd.archive, `${etcdDir}/etcdctl`)];
    return [
      ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'].map((b) => bin(v.kubernetes.server, `kubernetes/server/bin/${b}`)),
      ...etcd,
    ];
  }
  const members = ['kubelet', 'kube-proxy', 'kubectl'].map((b) => bin(v.kubernetes.node, `kubernetes/node/bin/${b}`));
  if (plan.runtime === 'docker') members.push(bin(v.criDockerd.archive, 'cri-dockerd/cri-dockerd'));
  else {
    members.push(...['containerd', 'containerd-shim-runc-v2', 'ctr'].map((b) => bin(v.containerd.archive, `bin/${b}`)), {
      artifact: v.containerd.runc,
      member: '-',
      dest: '/usr/local/sbin/runc',
    });
  }
  return members;
}

/** An image archive of an air-gapped install: verified, installed at `dest`, loaded into the runtime. */
export interface ImageArchive {
  image: PlannedImage;
  dest: string;
}

/**
 * The image archives a node needs: only in an air-gapped install (elsewhere the runtime pulls
 * each image by its pinned digest), and only where pods run.
 */
export function imageArchives(plan: Plan, node: PlannedNode): ImageArchive[] {
  if (plan.binariesDir === undefined || !node.runsPods) return [];
  return [plan.images.pause, plan.images.coredns, plan.images.smoke].map((image) => ({ image, dest: `${PATHS.imagesDir}/${image.archive}` }));
}

/**
 * Where a node keeps a release archive it verified (provision/install-binaries' cache): keyed by
 * the checksum, so another release never takes its place.
 */
export function archiveCachePath(artifact: Artifact): string {
  const [algo, hex] = artifact.checksum.split(':') as [string, string];
  return `${PATHS.archiveCache}/${algo}-${hex}/${basename(artifact.url)}`;
}

/** A file of binaries.dir a node installs, and where the node keeps its own copy once installed. */
export interface NodeBinaryFile {
  file: string;
  held: string;
}

/**
 * The files of binaries.dir a node installs (release archives named as in their URLs, image
 * archives): what an air-gapped install hands that node, and nothing else.
 */
export function nodeBinaryFiles(plan: Plan, node: PlannedNode): NodeBinaryFile[] {
  if (plan.binariesDir === undefined) return [];
  const files = new Map<string, string>();
  for (const { artifact } of artifactMembers(plan, node)) files.set(basename(artifact.url), archiveCachePath(artifact));
  for (const a of imageArchives(plan, node)) files.set(a.image.archive, a.dest);
  return [...files].map(([file, held]) => ({ file, held }));
}

/**
 * artifacts.tsv row of an image archive: `image:<reference>`, the pinned image ID (or `-`), the
 * archive's file name in binaries.dir, where it is installed. provision/install-binaries reads
 * the `image:` prefix.
 */
function imageArchiveRow(a: ImageArchive): string[] {
  return [`image:${a.image.ref}`, a.image.id ?? '-', a.image.archive, a.dest];
}

/**
 * OS packages (Debian/Ubuntu names) every node needs. libstrongswan-standard-plugins: the
 * openssl plugin, without which charon has neither ECDSA keys nor AES-GCM. nftables: the node
 * network's guard and pod-source NAT (iptables cannot order a filter after NAT).
 */
const BASE_PACKAGES = [
  'strongswan-starter',
  'strongswan-charon',
  'libstrongswan-standard-plugins',
  'iptables',
  'nftables',
  'iproute2',
  'kmod',
  'conntrack',
  'ca-certificates',
  'curl',
];

/**
 * What `kube-ipsec check` runs on a node besides the packages above: strongSwan's vici client
 * (swanctl --list-sas), ping, tcpdump for the underlay captures, socat for TCP listeners and
 * streams. Every node gets them, so that `npm run check` works right after `vagrant up` with
 * any box, not only with kube-ipsec's own.
 */
const CHECK_PACKAGES = ['strongswan-swanctl', 'iputils-ping', 'tcpdump', 'socat'];

/**
 * Packages a node that runs pods needs for its runtime (containerd comes as a release archive).
 * containernetworking-plugins: the `loopback` plugin, which both runtimes call for every pod's
 * lo (from /usr/lib/cni). apparmor: on a kernel with AppArmor on, dockerd loads its
 * docker-default profile with apparmor_parser and refuses to start containers without it.
 */
const RUNTIME_PACKAGES: Record<Plan['runtime'], string[]> = {
  docker: ['docker.io', 'apparmor', 'containernetworking-plugins'],
  containerd: ['containernetworking-plugins'],
};

/** OS packages (Debian/Ubuntu names) the node needs. */
export function osPackages(plan: Plan, node: PlannedNode): string[] {
  return [...BASE_PACKAGES, ...CHECK_PACKAGES, ...(node.runsPods ? RUNTIME_PACKAGES[plan.runtime] : [])];
}

/** Every package a node of any cluster may need (a VM image that has them needs no mirror). */
export function everyOsPackage(): string[] {
  return [...new Set([...BASE_PACKAGES, ...CHECK_PACKAGES, ...Object.values(RUNTIME_PACKAGES).flat()])];
}

/** Units of the node in bring-up order (DESIGN decision 6). */
export function nodeUnits(plan: Plan, node: PlannedNode): string[] {
  const head = [UNITS.nodeNetwork, UNITS.strongswan];
  if (node.role === 'master') return [...head, UNITS.etcd, UNITS.apiserver, UNITS.controllerManager, UNITS.scheduler, UNITS.addons];
  const images = imageArchives(plan, node).length ? [UNITS.images] : [];
  return [...head, ...runtimeUnits(plan, node), ...images, UNITS.kubelet, UNITS.kubeProxy];
}

export function nodeMetaFiles(plan: Plan, node: PlannedNode): RenderedFile[] {
  const env = [
    `# ${GENERATED}`,
    `NODE_NAME=${node.name}`,
    `NODE_ROLE=${node.role}`,
    `NODE_IP=${node.ip}`,
    `RUNTIME=${node.runsPods ? plan.runtime : 'none'}`,
    '# The CNI plugin shipped with the tree (dist/ipsec-cni), where pods are run.',
    `CNI_PLUGIN=${node.runsPods ? PATHS.cniPlugin : ''}`,
    `PACKAGES="${osPackages(plan, node).join(' ')}"`,
    '# Bring-up order: each unit starts after the ones before it.',
    `UNITS="${nodeUnits(plan, node).join(' ')}"`,
    '',
  ].join('\n');
  const rows = [
    ...artifactMembers(plan, node).map((m) => [m.artifact.url, m.artifact.checksum, m.member, m.dest].join('\t')),
    ...imageArchives(plan, node).map((a) => imageArchiveRow(a).join('\t')),
  ];
  const tsv = [
    `# ${GENERATED}`,
    '# url\tchecksum\tmember (- = the file itself)\tdestination',
    '# image:<reference>\timage ID (- = not pinned)\tarchive in binaries.dir\tdestination (loaded by kube-ipsec-images.service)',
    ...rows,
    '',
  ].join('\n');
  return [file(PATHS.nodeEnv, env), file(PATHS.artifacts, tsv)];
}
