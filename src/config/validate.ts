// Rules that span several keys of a structurally valid cluster.yaml: address plan
// consistency, uniqueness, and settings that only make sense together.
import { chooseSubnet } from '../plan/addressing.ts';
import { espOverhead, MAX_USERSPACE_ESP_MTU } from '../plan/mtu.ts';
import { cidr, contains, formatCidr, formatIpv4, lastAddress, overlaps, parseIpv4, subnetCount, type Cidr } from '../plan/ipv4.ts';
import { DEFAULTS, type ClusterConfig } from './defaults.ts';
import { formatPath, type ConfigIssue } from './errors.ts';
import { LOCAL_BOX } from '../vagrant/providers.ts';
import { RESERVED_NODE_NAMES } from '../pki/specs.ts';

export type LocatedIssue = ConfigIssue & { pathParts: (string | number)[] };

function issue(pathParts: (string | number)[], value: unknown, problem: string, fix: string): LocatedIssue {
  return { pathParts, path: formatPath(pathParts), value, problem, fix };
}

export function validateCluster(c: ClusterConfig): LocatedIssue[] {
  return [
    ...checkRanges(c),
    ...checkNodes(c),
    ...checkNodeSubnets(c),
    ...checkMtu(c),
    ...checkIpsec(c),
    ...checkPki(c),
    ...checkVersions(c),
    ...checkBinaries(c),
    ...checkVagrant(c),
  ];
}

function checkVagrant(c: ClusterConfig): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  const { libvirt, virtualbox } = c.vagrant;
  if (libvirt.cpuModel !== undefined && libvirt.cpuMode !== 'custom') {
    out.push(
      issue(
        ['vagrant', 'libvirt', 'cpuModel'],
        libvirt.cpuModel,
        `applies only to vagrant.libvirt.cpuMode: custom (cpuMode is ${libvirt.cpuMode ?? 'chosen by the driver'})`,
        'set vagrant.libvirt.cpuMode: custom, or remove cpuModel',
      ),
    );
  }
  if (virtualbox.box === LOCAL_BOX) {
    out.push(
      issue(
        ['vagrant', 'virtualbox', 'box'],
        virtualbox.box,
        'is a box for libvirt only (npm run box builds it for vagrant-libvirt)',
        'name a box for VirtualBox, e.g. debian/bookworm64',
      ),
    );
  }
  return out;
}

function checkBinaries(c: ClusterConfig): LocatedIssue[] {
  if (!c.binaries.allowAbsent || c.binaries.dir !== undefined) return [];
  return [
    issue(
      ['binaries', 'allowAbsent'],
      true,
      'only applies to an air-gapped install (without binaries.dir every archive is downloaded)',
      'set binaries.dir, or remove binaries.allowAbsent',
    ),
  ];
}

function checkRanges(c: ClusterConfig): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  const ranges = [
    ['nodeCidr', 'node network'],
    ['podCidr', 'pod range'],
    ['serviceCidr', 'service range'],
  ] as const;
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const [a, aName] = ranges[i]!;
      const [b, bName] = ranges[j]!;
      if (overlaps(cidr(c.network[a]), cidr(c.network[b]))) {
        out.push(
          issue(
            ['network', b],
            c.network[b],
            `overlaps the ${aName} network.${a} = ${c.network[a]}`,
            `choose disjoint ranges for the ${aName} and the ${bName}`,
          ),
        );
      }
    }
  }
  const service = cidr(c.network.serviceCidr);
  const dns = parseIpv4(c.network.clusterDns)!;
  if (!contains(service, dns)) {
    out.push(
      issue(
        ['network', 'clusterDns'],
        c.network.clusterDns,
        `is outside network.serviceCidr = ${c.network.serviceCidr}`,
        `pick an address inside ${c.network.serviceCidr}, e.g. ${formatIpv4(service.base + 10)}`,
      ),
    );
  } else if (dns === service.base || dns === service.base + 1 || dns === lastAddress(service)) {
    out.push(
      issue(
        ['network', 'clusterDns'],
        c.network.clusterDns,
        `is the network address, the kubernetes service VIP (${formatIpv4(service.base + 1)}) or the broadcast address of ${c.network.serviceCidr}`,
        `pick another address, e.g. ${formatIpv4(service.base + 10)}`,
      ),
    );
  }
  const pod = cidr(c.network.podCidr);
  const prefix = c.network.nodeSubnetPrefix;
  if (prefix < pod.prefix || prefix > 30) {
    out.push(
      issue(
        ['network', 'nodeSubnetPrefix'],
        prefix,
        `must lie between the pod range's prefix /${pod.prefix} and /30`,
        `use e.g. 24 with podCidr ${c.network.podCidr}`,
      ),
    );
  } else if (c.nodes.length > subnetCount(pod, prefix)) {
    out.push(
      issue(
        ['nodes'],
        `${c.nodes.length} nodes`,
        `more nodes than /${prefix} subnets in network.podCidr = ${c.network.podCidr} (${subnetCount(pod, prefix)})`,
        'widen network.podCidr or lengthen network.nodeSubnetPrefix',
      ),
    );
  }
  return out;
}

function checkNodes(c: ClusterConfig): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  const masters = c.nodes.map((n, i) => [n, i] as const).filter(([n]) => n.role === 'master');
  if (masters.length === 0)
    out.push(issue(['nodes'], undefined, 'has no node with role: master', 'give exactly one node `role: master` (it runs etcd and the control plane)'));
  for (const [n, i] of masters.slice(1)) {
    out.push(
      issue(['nodes', i, 'role'], n.role, `is a second master (the first is ${masters[0]![0].name}); kube-ipsec runs one control plane`, 'set `role: minion`'),
    );
  }
  const nodeNet = cidr(c.network.nodeCidr);
  const pod = cidr(c.network.podCidr);
  const service = cidr(c.network.serviceCidr);
  const byName = new Map<string, number>();
  const byIp = new Map<string, number>();
  c.nodes.forEach((n, i) => {
    const reserved = RESERVED_NODE_NAMES.get(n.name);
    if (reserved !== undefined) {
      out.push(
        issue(
          ['nodes', i, 'name'],
          n.name,
          `is reserved: it is ${reserved}, and a node's certificates carry its name`,
          `rename the node (e.g. ${n.role === 'master' ? 'master' : `minion${i}`})`,
        ),
      );
    }
    const dupName = byName.get(n.name);
    if (dupName !== undefined) out.push(issue(['nodes', i, 'name'], n.name, `is also the name of nodes[${dupName}]`, 'give every node a unique name'));
    else byName.set(n.name, i);
    const dupIp = byIp.get(n.ip);
    if (dupIp !== undefined)
      out.push(issue(['nodes', i, 'ip'], n.ip, `is also the address of nodes[${dupIp}] (${c.nodes[dupIp]!.name})`, 'give every node a unique address'));
    else byIp.set(n.ip, i);
    const ip = parseIpv4(n.ip)!;
    if (contains(pod, ip))
      out.push(
        issue(
          ['nodes', i, 'ip'],
          n.ip,
          `is inside the pod range network.podCidr = ${c.network.podCidr}`,
          `use an address of network.nodeCidr = ${c.network.nodeCidr}`,
        ),
      );
    else if (contains(service, ip))
      out.push(
        issue(
          ['nodes', i, 'ip'],
          n.ip,
          `is inside the service range network.serviceCidr = ${c.network.serviceCidr}`,
          `use an address of network.nodeCidr = ${c.network.nodeCidr}`,
        ),
      );
    else if (!contains(nodeNet, ip))
      out.push(
        issue(
          ['nodes', i, 'ip'],
          n.ip,
          `is outside network.nodeCidr = ${c.network.nodeCidr}`,
          `use an address of ${c.network.nodeCidr}, or change network.nodeCidr`,
        ),
      );
    else if (nodeNet.prefix < 31 && (ip === nodeNet.base || ip === lastAddress(nodeNet))) {
      out.push(issue(['nodes', i, 'ip'], n.ip, `is the network or broadcast address of ${c.network.nodeCidr}`, 'use a host address'));
    }
  });
  return out;
}

function checkNodeSubnets(c: ClusterConfig): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  const pod = cidr(c.network.podCidr);
  const prefix = c.network.nodeSubnetPrefix;
  if (prefix < pod.prefix || prefix > 30) return out; // reported by checkRanges
  const taken: { subnet: Cidr; index: number }[] = [];
  c.nodes.forEach((n, i) => {
    const choice = chooseSubnet(n, pod, prefix);
    if (!choice.ok) {
      const count = subnetCount(pod, prefix);
      out.push(
        choice.reason === 'no-number'
          ? issue(
              ['nodes', i, 'name'],
              n.name,
              'does not end in a number, so no pod subnet can be derived from it',
              `set nodes[${i}].podSubnet to a free /${prefix} of ${c.network.podCidr}`,
            )
          : issue(
              ['nodes', i, 'name'],
              n.name,
              `derives pod subnet #${choice.index}, but ${c.network.podCidr} has only ${count} /${prefix} subnets`,
              `set nodes[${i}].podSubnet explicitly or widen network.podCidr`,
            ),
      );
      return;
    }
    const s = choice.subnet;
    if (choice.source === 'explicit') {
      if (s.prefix !== prefix || !contains(pod, s.base) || !contains(pod, lastAddress(s))) {
        out.push(
          issue(
            ['nodes', i, 'podSubnet'],
            n.podSubnet,
            `must be a /${prefix} inside network.podCidr = ${c.network.podCidr}`,
            `pick a /${prefix} of ${c.network.podCidr}, e.g. ${formatCidr({ base: pod.base, prefix })}`,
          ),
        );
        return;
      }
    }
    const clash = taken.find((t) => overlaps(t.subnet, s));
    if (clash) {
      const other = c.nodes[clash.index]!;
      out.push(
        issue(
          ['nodes', i, choice.source === 'explicit' ? 'podSubnet' : 'name'],
          choice.source === 'explicit' ? n.podSubnet : n.name,
          `gives pod subnet ${formatCidr(s)}, already owned by nodes[${clash.index}] (${other.name})`,
          `set nodes[${i}].podSubnet to a free /${prefix} of ${c.network.podCidr}`,
        ),
      );
      return;
    }
    taken.push({ subnet: s, index: i });
  });
  return out;
}

function checkMtu(c: ClusterConfig): LocatedIssue[] {
  const { podMtu, underlayMtu } = c.network;
  if (podMtu === undefined) return [];
  const max = underlayMtu - espOverhead(c.ipsec.espMode, c.ipsec.esp);
  const limit = c.ipsec.espMode === 'userspace' ? Math.min(max, MAX_USERSPACE_ESP_MTU) : max;
  if (podMtu <= limit) return [];
  return [
    issue(
      ['network', 'podMtu'],
      podMtu,
      `leaves no room for ESP: at most ${limit} fits in underlayMtu ${underlayMtu} with ${c.ipsec.espMode} ESP`,
      `set podMtu ≤ ${limit} or remove it to use the computed value`,
    ),
  ];
}

const SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;
export function durationSeconds(d: string): number {
  return Number(d.slice(0, -1)) * SECONDS[d.slice(-1) as keyof typeof SECONDS];
}

function checkIpsec(c: ClusterConfig): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  const { rekeyMargin, lifetime, ikeLifetime } = c.ipsec;
  // strongSwan rekeys at lifetime − margin − a random share of the margin (rekeyfuzz 100%):
  // anywhere from lifetime − 2×margin to lifetime − margin, which must stay after the start.
  for (const [key, value] of [
    ['lifetime', lifetime],
    ['ikeLifetime', ikeLifetime],
  ] as const) {
    if (2 * durationSeconds(rekeyMargin) >= durationSeconds(value)) {
      out.push(
        issue(
          ['ipsec', 'rekeyMargin'],
          rekeyMargin,
          `is too long for ipsec.${key} = ${value}: strongSwan rekeys between ${key} − 2×rekeyMargin and ${key} − rekeyMargin (rekeyfuzz 100%), so 2×rekeyMargin must be shorter than ${key}`,
          `shorten rekeyMargin to less than half of ${key}, or lengthen ${key}`,
        ),
      );
    }
  }
  if (c.ipsec.nodeEncryption && c.ipsec.espMode === 'userspace') {
    out.push(
      issue(
        ['ipsec', 'nodeEncryption'],
        true,
        "needs ESP in the kernel: strongSwan's userspace ESP (espMode: userspace) cannot carry a node's own address, which its IKE traffic uses too",
        'set ipsec.espMode: kernel (the default; every VM has it), or turn nodeEncryption off',
      ),
    );
  }
  return out;
}

function checkPki(c: ClusterConfig): LocatedIssue[] {
  // A certificate is re-issued once it expires within renewBeforeDays: with renewBeforeDays at
  // or beyond its whole validity it is due as soon as it is issued, so every render re-issues it.
  const { renewBeforeDays, certValidityDays, caValidityDays } = c.pki;
  const [key, days, what] =
    caValidityDays <= certValidityDays
      ? ([
          'caValidityDays',
          caValidityDays,
          'the CA would be due for renewal as soon as issued, and every render would re-issue it and every certificate it signs',
        ] as const)
      : ([
          'certValidityDays',
          certValidityDays,
          'every certificate would be due for renewal as soon as issued, and every render would re-issue them all',
        ] as const);
  if (renewBeforeDays < days) return [];
  return [
    issue(
      ['pki', 'renewBeforeDays'],
      renewBeforeDays,
      `is not shorter than pki.${key} = ${days}: ${what}`,
      `set renewBeforeDays well below ${days} (the default is ${DEFAULTS.pki.renewBeforeDays} of ${DEFAULTS.pki[key]}), or lengthen pki.${key}`,
    ),
  ];
}

function checkVersions(c: ClusterConfig): LocatedIssue[] {
  // A URL that does not mention its version is how a bump half-applied shows up.
  const out: LocatedIssue[] = [];
  const k = c.versions.kubernetes;
  for (const part of ['server', 'node'] as const) {
    if (!k[part].url.includes(`/${k.version}/`)) {
      out.push(
        issue(
          ['versions', 'kubernetes', part, 'url'],
          k[part].url,
          `does not name versions.kubernetes.version = ${k.version}`,
          `use https://dl.k8s.io/${k.version}/kubernetes-${part}-linux-amd64.tar.gz with its checksum`,
        ),
      );
    }
  }
  for (const name of ['etcd', 'criDockerd', 'containerd'] as const) {
    const v = c.versions[name];
    // Debian packages name the version without its "v" (etcd-server_3.4.23-4+b4_amd64.deb).
    if (!v.archive.url.includes(v.version) && !v.archive.url.includes(v.version.replace(/^v/, ''))) {
      out.push(
        issue(
          ['versions', name, 'archive', 'url'],
          v.archive.url,
          `does not name versions.${name}.version = ${v.version}`,
          'update the URL and checksum together with the version',
        ),
      );
    }
  }
  return out;
}
