// The VM lab's pure parts: layout (names, addresses, MACs, the wire namespace's ip batch),
// seeds, qemu's command line, the image recipe's cache key, Debian package records, and
// how the VM checks read systemd, the kernel's XFRM tables and provisioning's reports.
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { classifyCapture } from '../../src/check/capture.ts';
import { captureResult } from '../../src/check/checks/traffic.ts';
import { labTopology } from '../../src/lab/topology.ts';
import { parseAptRecord, upstreamVersion } from '../../src/lab/vm/binaries.ts';
import { idleUnits, orderingRules, unitsProblems, type NodeUnits } from '../../src/check/checks/units.ts';
import { kernelEspProblems, parseXfrmPolicies, parseXfrmStates } from '../../src/check/checks/kernel-esp.ts';
import { changedFiles, reportedActions, roundProblems, touchedUnits, type NodeSnapshot, type ReprovisionRound } from '../../src/check/checks/reprovision.ts';
import { afterBootProblems, EARLY_PROBE_UNIT, PROBE_UNIT, probeUnits, type AfterBoot } from '../../src/check/checks/reboot.ts';
import { meshVariant } from '../../src/lab/mesh-variants.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { imageRecipe, recipeKey, VM_BASE_PACKAGES } from '../../src/lab/vm/image.ts';
import { labTaps, macOf, managementNetwork, seedText, vmLayout, vmWireBatch } from '../../src/lab/vm/layout.ts';
import { KERNEL_CMDLINE, overlayArgv, qemuArgv, vmFiles } from '../../src/lab/vm/qemu.ts';
import { envValue, execPath, parseShow } from '../../src/check/systemd.ts';
import { labOverrides } from '../../src/lab/vm/up.ts';
import { parseRestartMap, restartMapFile } from '../../src/render/restarts.ts';
import { everyOsPackage } from '../../src/render/artifacts.ts';
import { formatCidr } from '../../src/plan/ipv4.ts';
import { clusterYaml, placeholderPki, plan } from '../helpers/cluster.ts';

const threeNodes = {
  nodes: [
    { name: 'master', role: 'master', ip: '192.168.10.10' },
    { name: 'minion1', ip: '192.168.10.21' },
    { name: 'minion2', ip: '192.168.10.22' },
  ],
};
const p = plan(threeNodes);
const t = labTopology(p, 'kv1');
const layout = vmLayout(p, t, 768);

describe('VM layout', () => {
  it('gives each VM a management address, two taps and MACs, all named within 15 characters', () => {
    expect(layout.mgmt).toEqual({ bridge: 'kv1-mg', cidr: '100.64.10.0/24', hostIp: '100.64.10.1', hostAddress: '100.64.10.1/24' });
    expect(layout.nodes.map((v) => [v.name, v.mgmtIp, v.mgmtTap, v.underlayTap, v.mgmtMac, v.underlayMac])).toEqual([
      ['master', '100.64.10.10', 'kv1-v0m', 'kv1-v0u', '52:54:00:a0:00:00', '52:54:00:a1:00:00'],
      ['minion1', '100.64.10.11', 'kv1-v1m', 'kv1-v1u', '52:54:00:a0:00:01', '52:54:00:a1:00:01'],
      ['minion2', '100.64.10.12', 'kv1-v2m', 'kv1-v2u', '52:54:00:a0:00:02', '52:54:00:a1:00:02'],
    ]);
    const long = vmLayout(p, labTopology(p, 'abcdefgh'), 512);
    expect(Math.max(...labTaps(long).map((n) => n.length))).toBeLessThanOrEqual(15);
    expect(macOf(1, 300)).toBe('52:54:00:a1:01:2c');
  });

  it('keeps the management network clear of every cluster range', () => {
    expect(formatCidr(managementNetwork(plan({ ...threeNodes, 'network.podCidr': '100.64.0.0/10' })))).toBe('172.31.254.0/24');
  });

  it('builds the wire namespace: underlay bridge, upstream veth into its namespace, management bridge with the host address, taps on their bridges', () => {
    expect(vmWireBatch(t, layout)).toEqual([
      'link set lo up',
      'link add kv1-br mtu 1500 type bridge',
      'link set kv1-br up',
      'link add kv1-up mtu 1500 master kv1-br up type veth peer name kv1-eth mtu 1500 netns kv1-upstream',
      'link add kv1-mg type bridge',
      'addr add 100.64.10.1/24 dev kv1-mg',
      'link set kv1-mg up',
      ...[0, 1, 2].flatMap((i) => [
        `tuntap add mode tap name kv1-v${i}m`,
        `link set kv1-v${i}m master kv1-mg up`,
        `tuntap add mode tap name kv1-v${i}u`,
        `link set kv1-v${i}u mtu 1500 master kv1-br up`,
      ]),
    ]);
  });

  it('seeds a VM with its identity, one KEY=value per line, keys never spanning lines', () => {
    const keys = {
      hostKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nAAA=\n-----END OPENSSH PRIVATE KEY-----\n',
      hostKeyPub: 'ssh-ed25519 AAAAC3 h\n',
      authorizedKey: 'ssh-ed25519 AAAAC3 lab\n',
    };
    const text = seedText(t, layout, 'minion1', keys);
    expect(
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('=')[0]),
    ).toEqual([
      'HOSTNAME',
      'MGMT_MAC',
      'MGMT_ADDRESS',
      'UNDERLAY_MAC',
      'UNDERLAY_ADDRESS',
      'UNDERLAY_MTU',
      'GATEWAY',
      'HOST_KEY',
      'HOST_KEY_PUB',
      'AUTHORIZED_KEY',
    ]);
    expect(text).toContain('UNDERLAY_ADDRESS=192.168.10.21/24\n');
    expect(text).toContain(`GATEWAY=${t.upstream.ip}\n`);
    const hostKey = /^HOST_KEY=(.*)$/m.exec(text)![1]!;
    expect(Buffer.from(hostKey, 'base64').toString()).toBe(keys.hostKey);
    expect(() => seedText(t, layout, 'minion1', { ...keys, authorizedKey: 'a\nb' })).toThrow(/spans lines/);
  });
});

describe('qemu command line', () => {
  const image = { key: 'k', dir: '/cache/k', kernel: '/cache/k/vmlinuz', initrd: '/cache/k/initrd.gz', disk: '/cache/k/disk.img', box: '/cache/k/libvirt.box' };
  const files = vmFiles('/state', 'minion1');
  it('boots the image kernel with the overlay, two taps by name, the seed in fw_cfg, and no other device or network', () => {
    const argv = qemuArgv(image, layout.nodes[1]!, files, { accel: 'tcg', cpu: 'max', why: '' });
    const opt = (name: string) => argv.flatMap((a, i) => (a === name ? [argv[i + 1]] : []));
    expect(argv[0]).toBe('qemu-system-x86_64');
    expect(argv).toContain('-nodefaults');
    expect(opt('-machine')).toEqual(['pc,accel=tcg']);
    expect(opt('-append')).toEqual([`${KERNEL_CMDLINE} nokaslr`]);
    expect(qemuArgv(image, layout.nodes[1]!, files, { accel: 'kvm', cpu: 'host', why: '' })).toContain(KERNEL_CMDLINE);
    expect(opt('-drive')).toEqual(['file=/state/vms/minion1/disk.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap']);
    expect(opt('-netdev')).toEqual(['tap,id=mgmt,ifname=kv1-v1m,script=no,downscript=no', 'tap,id=underlay,ifname=kv1-v1u,script=no,downscript=no']);
    expect(opt('-fw_cfg')).toEqual(['name=opt/kube-ipsec/seed,file=/state/vms/minion1/seed']);
    expect(opt('-pidfile')).toEqual(['/state/vms/minion1/qemu.pid']);
    expect(argv.join(' ')).not.toMatch(/-nic|user,|hostfwd|-netdev user/);
    expect(overlayArgv(image, files)).toEqual([
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      '/cache/k/disk.img',
      '-F',
      'raw',
      '/state/vms/minion1/disk.qcow2',
    ]);
  });
});

describe('node image recipe', () => {
  it('bakes every package any node installs, and its key changes with the recipe only', () => {
    const r = imageRecipe();
    for (const pkg of [...everyOsPackage(), ...VM_BASE_PACKAGES]) expect(r.packages).toContain(pkg);
    expect(recipeKey(r)).toMatch(/^[0-9a-f]{16}$/);
    expect(recipeKey(imageRecipe())).toBe(recipeKey(r));
    expect(recipeKey({ ...r, script: `${r.script}\n# changed` })).not.toBe(recipeKey(r));
    expect(recipeKey({ ...r, packages: [...r.packages, 'htop'] })).not.toBe(recipeKey(r));
    expect(recipeKey({ ...r, mirror: 'http://ftp.de.debian.org/debian' })).not.toBe(recipeKey(r));
  });
});

describe("Debian's etcd as the air-gapped etcd archive", () => {
  it('reads the candidate record and derives the upstream version', () => {
    const rec = parseAptRecord(
      'Package: etcd-server\nVersion: 3.4.23-4+b4\nFilename: pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb\nSHA256: ab\n\nPackage: etcd-server\nVersion: 3.4.20-1\n',
    );
    expect(rec).toMatchObject({ Version: '3.4.23-4+b4', Filename: 'pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb', SHA256: 'ab' });
    expect(upstreamVersion('3.4.23-4+b4')).toBe('v3.4.23');
    expect(upstreamVersion('1:2.0.1-3')).toBe('v2.0.1');
  });

  it("overrides only the lab's settings in cluster.yaml: ssh per node with a pinned host key, binaries, etcd", () => {
    const doc = parseDocument(clusterYaml(threeNodes));
    const hosts = new Map(layout.nodes.map((v) => [v.name, { key: '', pub: '', fingerprint: `SHA256:${v.name}` }]));
    labOverrides(
      doc,
      layout,
      { dir: '/s/ssh', clientKey: '/s/ssh/id_ed25519', knownHosts: '/s/ssh/known_hosts', hosts },
      {
        dir: '/cache/bin',
        allowAbsent: true,
        smoke: { image: 'kube-ipsec.test/smoke:busybox', id: `sha256:${'cd'.repeat(32)}` },
        etcd: { upstream: 'v3.4.23', url: 'https://deb.debian.org/debian/pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb', sha256: 'ab'.repeat(32) },
      },
    );
    const js = doc.toJS() as { nodes: { name: string; ssh: object }[]; binaries: object; versions: { etcd: object; images: object } };
    expect(js.versions.images).toEqual({ smoke: { image: 'kube-ipsec.test/smoke:busybox', id: `sha256:${'cd'.repeat(32)}` } });
    expect(js.nodes[1]).toMatchObject({
      name: 'minion1',
      ssh: { host: '100.64.10.11', port: 22, user: 'root', privateKey: '/s/ssh/id_ed25519', hostKey: 'SHA256:minion1' },
    });
    expect(js.binaries).toEqual({ dir: '/cache/bin', allowAbsent: true });
    expect(js.versions.etcd).toEqual({
      version: 'v3.4.23',
      archive: { url: 'https://deb.debian.org/debian/pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb', checksum: `sha256:${'ab'.repeat(32)}` },
    });
  });

  it('with built binaries: only ssh and binaries.dir, nothing absent allowed, the pinned versions kept', () => {
    const doc = parseDocument(clusterYaml(threeNodes));
    const hosts = new Map(layout.nodes.map((v) => [v.name, { key: '', pub: '', fingerprint: `SHA256:${v.name}` }]));
    labOverrides(doc, layout, { dir: '/s/ssh', clientKey: '/s/ssh/id_ed25519', knownHosts: '/s/ssh/known_hosts', hosts }, { dir: '/lab/binaries' });
    const js = doc.toJS() as { binaries: object; versions?: object };
    expect(js.binaries).toEqual({ dir: '/lab/binaries' });
    expect(js.versions).toBeUndefined();
  });
});

describe('reading systemd', () => {
  it('parses `systemctl show` of several units, ExecStart programs and node.env', () => {
    const shown = parseShow(
      'Id=a.service\nActiveState=active\nExecStart={ path=/usr/local/bin/kubelet ; argv[]=/usr/local/bin/kubelet --v=2 ; }\n\nId=b.socket\nActiveState=inactive\n',
    );
    expect(shown).toHaveLength(2);
    expect(shown[1]).toEqual({ Id: 'b.socket', ActiveState: 'inactive' });
    expect(execPath(shown[0]!.ExecStart)).toBe('/usr/local/bin/kubelet');
    expect(envValue('# x\nUNITS="a.service b.service"\nNODE_NAME=m\n', 'UNITS')).toBe('a.service b.service');
  });
});

const minionUnits = [
  'kube-ipsec-network.service',
  'strongswan-starter.service',
  'docker.service',
  'cri-docker.socket',
  'cri-docker.service',
  'kubelet.service',
  'kube-proxy.service',
];
function unitsOf(overrides: Record<string, Record<string, string>> = {}): NodeUnits {
  const exec = (p: string) => `{ path=${p} ; argv[]=${p} ; }`;
  const base: Record<string, Record<string, string>> = {
    'kube-ipsec-network.service': {
      ExecStart: exec('/usr/local/lib/kube-ipsec/node-network'),
      ActiveState: 'active',
      UnitFileState: 'enabled',
      ActiveEnterTimestampMonotonic: '100',
    },
    'strongswan-starter.service': {
      ExecStart: exec('/usr/sbin/ipsec'),
      After: 'kube-ipsec-network.service',
      Requires: 'kube-ipsec-network.service',
      ActiveState: 'active',
      UnitFileState: 'enabled',
      InactiveExitTimestampMonotonic: '200',
    },
    'docker.service': { ExecStart: exec('/usr/sbin/dockerd'), After: 'kube-ipsec-network.service', ActiveState: 'active', UnitFileState: 'enabled' },
    'cri-docker.socket': { After: 'kube-ipsec-network.service', ActiveState: 'inactive', UnitFileState: 'disabled' },
    'cri-docker.service': {
      ExecStart: exec('/usr/local/bin/cri-dockerd'),
      After: 'kube-ipsec-network.service',
      Requires: 'cri-docker.socket',
      ActiveState: 'inactive',
      UnitFileState: 'disabled',
    },
    'kubelet.service': {
      ExecStart: exec('/usr/local/bin/kubelet'),
      After: 'kube-ipsec-network.service strongswan-starter.service',
      Requires: 'kube-ipsec-network.service cri-docker.service',
      ActiveState: 'inactive',
      UnitFileState: 'disabled',
    },
    'kube-proxy.service': { ExecStart: exec('/usr/local/bin/kube-proxy'), ActiveState: 'inactive', UnitFileState: 'disabled' },
  };
  const props = new Map(minionUnits.map((u) => [u, { LoadState: 'loaded', ...base[u], ...overrides[u] }]));
  return {
    node: 'minion1',
    units: minionUnits,
    props,
    present: new Set(['/usr/local/lib/kube-ipsec/node-network', '/usr/sbin/ipsec', '/usr/sbin/dockerd']),
    verify: ['kubelet.service: Command /usr/local/bin/kubelet is not executable: No such file or directory'],
  };
}

describe('units check', () => {
  it('finds the idle units: absent program, or needing / activating an idle unit', () => {
    const n = unitsOf();
    expect([...idleUnits(n.units, n.props, n.present)]).toEqual([
      ['cri-docker.service', 'no /usr/local/bin/cri-dockerd'],
      ['kubelet.service', 'no /usr/local/bin/kubelet'],
      ['kube-proxy.service', 'no /usr/local/bin/kube-proxy'],
      ['cri-docker.socket', 'activates cri-docker.service'],
    ]);
    expect(unitsProblems(n).problems).toEqual([]);
    expect(orderingRules(minionUnits)).toContainEqual(['kubelet.service', 'strongswan-starter.service']);
    // A socket is never ordered after an ordinary service (a boot cycle through sockets.target).
    expect(orderingRules(minionUnits).filter(([u]) => u.endsWith('.socket'))).toEqual([]);
  });

  it('names what is wrong: an idle unit enabled or started, a running unit down, ordering, verification', () => {
    const n = unitsOf({
      'kubelet.service': { UnitFileState: 'enabled', After: 'kube-ipsec-network.service' },
      'docker.service': { ActiveState: 'failed', SubState: 'failed' },
      'strongswan-starter.service': { InactiveExitTimestampMonotonic: '50' },
    });
    n.verify.push("kube-proxy.service: Unknown key name 'Bogus' in section 'Service', ignoring.");
    expect(unitsProblems(n).problems).toEqual([
      'minion1: docker.service is failed/failed, not active (journalctl -u docker.service on minion1)',
      'minion1: kubelet.service is enabled although it cannot run (no /usr/local/bin/kubelet): it would fail at every boot',
      "minion1: systemd-analyze verify kube-proxy.service: Unknown key name 'Bogus' in section 'Service', ignoring.",
      'minion1: kubelet.service is not ordered after strongswan-starter.service (After= in /etc/systemd/system/kubelet.service): it may start before the tunnels',
      'minion1: strongSwan began starting before kube-ipsec-network.service had finished',
    ]);
  });
});

describe('kernel ESP check', () => {
  const states = `src 192.168.10.21 dst 192.168.10.10
	proto esp spi 0xc1 reqid 1 mode tunnel
	replay-window 0 flag af-unspec
	aead rfc4106(gcm(aes)) 0x00 128
	lifetime current:
	  1234(bytes), 10(packets)
src 192.168.10.10 dst 192.168.10.21
	proto esp spi 0xc2 reqid 1 mode tunnel
	aead rfc4106(gcm(aes)) 0x00 128
	lifetime current:
	  99(bytes), 1(packets)
`;
  const policies = `src 10.240.1.0/24 dst 10.240.0.0/24
	dir out priority 375423
	tmpl src 192.168.10.21 dst 192.168.10.10
		proto esp spi 0xc2 reqid 1 mode tunnel
src 10.240.0.0/24 dst 10.240.1.0/24
	dir fwd priority 375423
	tmpl src 192.168.10.10 dst 192.168.10.21
`;
  const two = labTopology(plan({ nodes: threeNodes.nodes.slice(0, 2) }), 'kv1');
  it('parses the kernel tables and accepts an AES-GCM tunnel each way per peer with its policy', () => {
    const s = parseXfrmStates(states);
    expect(s.map((x) => [x.src, x.dst, x.mode, x.aead, x.bytes])).toEqual([
      ['192.168.10.21', '192.168.10.10', 'tunnel', 'rfc4106(gcm(aes))', 1234],
      ['192.168.10.10', '192.168.10.21', 'tunnel', 'rfc4106(gcm(aes))', 99],
    ]);
    expect(parseXfrmPolicies(policies)[0]).toEqual({
      src: '10.240.1.0/24',
      dst: '10.240.0.0/24',
      dir: 'out',
      tmplSrc: '192.168.10.21',
      tmplDst: '192.168.10.10',
    });
    expect(kernelEspProblems(two, { node: two.nodes[1]!, states: s, policies: parseXfrmPolicies(policies), libipsec: false })).toEqual([]);
  });
  it('names a missing direction, userspace ESP and a missing policy', () => {
    const one = parseXfrmStates(states).slice(0, 1);
    expect(kernelEspProblems(two, { node: two.nodes[1]!, states: one, policies: [], libipsec: true })).toEqual([
      "minion1 has strongSwan's userspace ESP device ipsec0: ESP runs in charon, not the kernel (strongswan.conf loads kernel-libipsec)",
      'minion1: the kernel holds no ESP SA 192.168.10.10 → 192.168.10.21 (master): the tunnel is not in the kernel',
      "minion1: no output policy 10.240.1.0/24 → 10.240.0.0/24 (master): its pods' traffic to master is not sent through the tunnel",
    ]);
  });
});

describe('capture with kernel ESP', () => {
  it('counts raw ESP and ESP in UDP 4500 apart, and refuses UDP encapsulation when the kernel does ESP', () => {
    const lines = [
      'IP 192.168.10.21 > 192.168.10.22: ESP(spi=0xc1,seq=0x1), length 120',
      'IP 192.168.10.21.4500 > 192.168.10.22.4500: UDP-encap: ESP(spi=0xc1,seq=0x2), length 120',
    ];
    const s = classifyCapture(lines, '10.240.0.0/16');
    expect([s.esp, s.espUdp]).toEqual([2, 1]);
    expect(captureResult(s, 4, new Map(), 'userspace').ok).toBe(true);
    const kernel = captureResult(s, 4, new Map(), 'kernel');
    expect(kernel.ok).toBe(false);
    expect(kernel.summary).toContain('1 raw ESP (protocol 50), 1 ESP in UDP 4500');
  });
});

describe('reprovision check', () => {
  const snap = (node: string, files: Record<string, string>, units: Record<string, [string, string]>): NodeSnapshot => ({
    node,
    files: new Map(Object.entries(files)),
    units: new Map(Object.entries(units).map(([u, [entered, pid]]) => [u, { entered, pid }])),
  });
  it("reads provisioning's report and compares snapshots", () => {
    expect(
      reportedActions('minion2: install /etc/ipsec.conf\nminion2: reload strongswan-starter.service\nminion1: restart kubelet.service\n', 'minion2'),
    ).toEqual([{ unit: 'strongswan-starter.service', action: 'reload' }]);
    const a = snap('minion2', { '/etc/ipsec.conf': '1', '/etc/x': '2' }, { 's.service': ['10', '5'], 'n.service': ['3', '1'] });
    const b = snap('minion2', { '/etc/ipsec.conf': '9', '/etc/x': '2' }, { 's.service': ['10', '5'], 'n.service': ['4', '2'] });
    expect(changedFiles(a, b)).toEqual(['/etc/ipsec.conf']);
    expect(touchedUnits(a, b)).toEqual({ restarted: ['n.service'], newPid: ['n.service'] });
  });
  it('accepts exactly the restart map; names a restart where a reload was due and a touched neighbour', () => {
    const ok: ReprovisionRound = {
      value: '7s',
      victim: 'minion2',
      changed: ['/etc/ipsec.conf'],
      expected: [{ unit: 'strongswan-starter.service', action: 'reload' }],
      reported: [{ unit: 'strongswan-starter.service', action: 'reload' }],
      victimTouched: { restarted: [], newPid: [] },
      others: [{ node: 'minion1', files: [], units: [] }],
      dpdSeen: ['7', '7'],
    };
    expect(roundProblems(ok)).toEqual([]);
    expect(
      roundProblems({
        ...ok,
        victimTouched: { restarted: ['strongswan-starter.service'], newPid: ['strongswan-starter.service'] },
        others: [{ node: 'minion1', files: ['/etc/ipsec.conf'], units: [] }],
        dpdSeen: ['5'],
      }),
    ).toEqual([
      'minion2: strongswan-starter.service was restarted (new ActiveEnterTimestamp) although nothing it depends on changed',
      'minion2: strongswan-starter.service got a new main process: it was restarted, not reloaded (its tunnels went down)',
      'minion1 was touched by re-provisioning minion2: /etc/ipsec.conf',
      "minion2: charon's connections have dpd_delay 5, not 7 s: the reload did not apply the new ipsec.conf",
    ]);
  });
  it('reads restart.tsv back into the rules it was written from', () => {
    const rules = [
      { unit: 'a.service', action: 'restart' as const, paths: ['/etc/a', '/usr/local/bin/a'] },
      { unit: 'b.service', action: 'reload' as const, paths: ['/etc/b'] },
    ];
    expect(parseRestartMap(restartMapFile(rules, 'generated'))).toEqual(rules);
  });
});

describe('reboot check', () => {
  const minion = t.nodes[2]!;
  const ordered = (net: number, swan: number, probe: number, early: number) =>
    new Map<string, Record<string, string>>([
      ['kube-ipsec-network.service', { ActiveState: 'active', ActiveEnterTimestampMonotonic: String(net) }],
      ['strongswan-starter.service', { InactiveExitTimestampMonotonic: String(swan) }],
      [PROBE_UNIT, { InactiveExitTimestampMonotonic: String(probe) }],
      [EARLY_PROBE_UNIT, { InactiveExitTimestampMonotonic: String(early) }],
      ['kubelet.service', { LoadState: 'loaded', After: 'kube-ipsec-network.service strongswan-starter.service' }],
    ]);
  const good: AfterBoot = {
    bridgeAddrs: [minion.gateway],
    blackholes: 'blackhole 10.240.0.0/16 \n',
    forward: '-P FORWARD ACCEPT\n-A FORWARD -j KUBE-IPSEC-FORWARD\n',
    natPostrouting: '-A POSTROUTING -j KUBE-IPSEC-POSTROUTING\n',
    natChain: `-A KUBE-IPSEC-POSTROUTING -s ${minion.podSubnet} ! -d 10.240.0.0/16 -j MASQUERADE\n`,
    units: ordered(100, 200, 300, 150),
  };
  it("accepts a boot whose node network came first, by systemd's record", () => {
    expect(afterBootProblems(minion, t.podCidr, 'ipsec-br01', good)).toEqual([]);
  });
  it('names each thing the boot did not restore, and a unit that started too early', () => {
    expect(
      afterBootProblems(minion, t.podCidr, 'ipsec-br01', { ...good, bridgeAddrs: [], blackholes: '', natChain: '', units: ordered(100, 90, 80, 150) }),
    ).toEqual([
      'minion2: after the reboot ipsec-br01 does not exist, not 10.240.2.1 (kube-ipsec-network.service did not run at boot)',
      'minion2: after the reboot there is no blackhole route for 10.240.0.0/16: pod traffic would leave in clear while strongSwan is not up',
      'minion2: after the reboot KUBE-IPSEC-POSTROUTING lacks the masquerade rule for 10.240.2.0/24',
      'minion2: strongswan-starter.service began starting 0.00 s before kube-ipsec-network.service had finished',
      'minion2: kube-ipsec-lab-probe.service began starting 0.00 s before kube-ipsec-network.service had finished',
      'minion2: the probe ordered like the kubelet started before strongSwan',
    ]);
  });
  it('orders its probes like the kubelet and right after the node network', () => {
    const [probe, early] = probeUnits('10.240.2.1', ['10.240.1.2'], 60);
    expect(probe!.text).toContain('After=kube-ipsec-network.service strongswan-starter.service');
    expect(early!.text).toContain('Before=strongswan-starter.service');
    expect(probe!.text).toContain('ping -n -q -i 0.5 -w 60 -I 10.240.2.1 10.240.1.2');
  });
});

describe('mesh variants the benches compare', () => {
  const rendered = renderCluster(plan(), placeholderPki(plan()), loadTemplates())
    .nodes.get('minion1')!
    .find((f) => f.path === '/etc/ipsec.conf')!.content;

  it('every end initiating: the answering conns start and restart the pair too; nothing else changes', () => {
    const both = meshVariant(rendered, 'every-end');
    expect(rendered.match(/auto=add/g)).toHaveLength(1); // minion1 answers master
    expect(both).not.toContain('auto=add');
    expect(both.match(/auto=start\n\s+dpdaction=restart\n\s+closeaction=restart/g)).toHaveLength(3);
    expect(both.split('\n').length).toBe(rendered.split('\n').length);
  });

  it('route: only the auto= lines change; rendered: the file as it is', () => {
    const route = meshVariant(rendered, 'route');
    expect(route.match(/auto=route/g)).toHaveLength(3);
    const before = rendered.split('\n');
    expect(route.split('\n').filter((l, i) => l !== before[i])).toEqual(['    auto=route', '    auto=route', '    auto=route']);
    expect(meshVariant(rendered, 'rendered')).toBe(rendered);
  });
});
