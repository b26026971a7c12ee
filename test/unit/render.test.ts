import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan } from '../helpers/cluster.ts';
import { fileAt, ipsecConns, shellVars, unitSections } from '../helpers/parse.ts';

const templates = loadTemplates();
const render = (edits: Record<string, unknown> = {}) => {
  const p = plan(edits);
  return { plan: p, cluster: renderCluster(p, placeholderPki(p), templates) };
};

describe('golden tree of minion1', () => {
  // Placeholder credentials keep these files stable; `vitest -u` updates them after an
  // intended change, and the diff in review shows exactly what a node would receive.
  const { cluster } = render();
  const files = cluster.nodes.get('minion1')!;

  it('has exactly these files, with these modes', async () => {
    const listing = files.map((f) => `${f.mode.toString(8).padStart(4, '0')} ${f.path}`).join('\n') + '\n';
    await expect(listing).toMatchFileSnapshot('__golden__/minion1.files.txt');
  });

  it.each(files.map((f) => [f.path, f] as const))('%s', async (path, f) => {
    await expect(f.content).toMatchFileSnapshot(`__golden__/minion1${path}`);
  });
});

describe('what each node gets', () => {
  const { plan: p, cluster } = render();

  it('control plane only on the master; kubelet, kube-proxy and CNI only where pods run', () => {
    const has = (node: string, path: string) => cluster.nodes.get(node)!.some((f) => f.path === path);
    const unit = (name: string) => `${PATHS.systemdDir}/${name}`;
    for (const name of [UNITS.etcd, UNITS.apiserver, UNITS.controllerManager, UNITS.scheduler]) {
      expect(has('master', unit(name))).toBe(true);
      expect(has('minion1', unit(name))).toBe(false);
    }
    for (const path of [unit(UNITS.kubelet), unit(UNITS.kubeProxy), PATHS.cniConflist, unit(UNITS.criDockerService)]) {
      expect(has('master', path)).toBe(false);
      for (const m of p.minions) expect(has(m.name, path)).toBe(true);
    }
    for (const n of p.nodes)
      for (const path of [PATHS.ipsecConf, PATHS.ipsecSecrets, PATHS.strongswanConf, PATHS.nodeNetworkScript, unit(UNITS.nodeNetwork)])
        expect(has(n.name, path)).toBe(true);
  });

  it('containerd replaces docker and cri-dockerd', () => {
    const { cluster: c } = render({ runtime: 'containerd' });
    const paths = c.nodes.get('minion2')!.map((f) => f.path);
    expect(paths).toContain(PATHS.containerdConfig);
    expect(paths).toContain(`${PATHS.systemdDir}/${UNITS.containerd}`);
    expect(paths.some((x) => x.includes('docker'))).toBe(false);
    const kubelet = parseYaml(fileAt(c.nodes.get('minion2')!, PATHS.kubeletConfig).content);
    expect(kubelet.containerRuntimeEndpoint).toBe('unix:///run/containerd/containerd.sock');
  });

  it('docker runs without its own iptables rules, masquerading or bridge', () => {
    const docker = fileAt(cluster.nodes.get('minion1')!, `${PATHS.systemdDir}/${UNITS.docker}`).content;
    expect(docker).toContain('--iptables=false');
    expect(docker).toContain('--ip-masq=false');
    expect(docker).toContain('--bridge=none');
  });

  it('ipsec.conf: one IKEv2 conn per peer, never giving up, rekeyed rather than re-authenticated', () => {
    for (const n of p.nodes) {
      const conns = ipsecConns(fileAt(cluster.nodes.get(n.name)!, PATHS.ipsecConf).content);
      const d = conns.get('%default')!;
      expect(d).toMatchObject({ keyexchange: 'ikev2', keyingtries: '%forever', reauth: 'no', leftsubnet: n.podSubnet });
      expect(conns.get('setup')!.uniqueids).toBe('yes');
      expect([...conns.keys()].filter((k) => !['setup', '%default'].includes(k))).toHaveLength(p.nodes.length - 1);
    }
  });

  it('ipsec.conf: exactly one end of each pair initiates, and sets the pair up again when the peer goes', () => {
    for (const t of p.tunnels) {
      const conn = (local: string, peer: string) => ipsecConns(fileAt(cluster.nodes.get(local)!, PATHS.ipsecConf).content).get(`${local}-${peer}`)!;
      expect(conn(t.a, t.b)).toMatchObject({ auto: 'start', dpdaction: 'restart', closeaction: 'restart' });
      expect(conn(t.b, t.a)).toMatchObject({ auto: 'add', dpdaction: 'clear', closeaction: 'none' });
    }
  });

  it('ipsec.nodeEncryption puts both node addresses into every CHILD_SA', () => {
    const { cluster: c } = render({ 'ipsec.nodeEncryption': true });
    const conns = ipsecConns(fileAt(c.nodes.get('minion1')!, PATHS.ipsecConf).content);
    expect(conns.get('%default')!.leftsubnet).toBe('10.240.1.0/24,192.168.10.21/32');
    expect(conns.get('minion1-minion2')!.rightsubnet).toBe('10.240.2.0/24,192.168.10.22/32');
    expect(ipsecConns(fileAt(cluster.nodes.get('minion1')!, PATHS.ipsecConf).content).get('minion1-minion2')!.rightsubnet).toBe('10.240.2.0/24');
  });

  it('userspace ESP loads kernel-libipsec; kernel ESP does not', () => {
    const conf = (c: typeof cluster) => fileAt(c.nodes.get('minion1')!, PATHS.strongswanConf).content;
    expect(conf(cluster)).not.toContain('kernel-libipsec');
    expect(conf(render({ 'ipsec.espMode': 'userspace' }).cluster)).toMatch(/kernel-libipsec \{\s+load = yes/);
  });

  it('psk: each node holds only the keys of its own tunnels', () => {
    const { cluster: c, plan: pp } = render({ 'ipsec.auth': 'psk' });
    for (const n of pp.nodes) {
      const secrets = fileAt(c.nodes.get(n.name)!, PATHS.ipsecSecrets).content;
      const ids = [...secrets.matchAll(/psk-of-(ipsec-psk@\S+?)"/g)].map((m) => m[1]);
      expect(ids).toHaveLength(pp.nodes.length - 1);
      expect(ids.every((id) => id!.split('@')[1]!.split('--').includes(n.name))).toBe(true);
      expect(secrets).not.toMatch(/%any/);
    }
  });

  it('node network: bridge with the gateway, fail-closed blackhole, masquerade sparing pod traffic', () => {
    const script = fileAt(cluster.nodes.get('minion2')!, PATHS.nodeNetworkScript);
    expect(script.mode).toBe(0o755);
    expect(shellVars(script.content)).toMatchObject({
      BRIDGE: 'ipsec-br01',
      GATEWAY: '10.240.2.1/24',
      NODE_SUBNET: '10.240.2.0/24',
      POD_CIDR: '10.240.0.0/16',
    });
    expect(script.content).toContain('ip route replace blackhole "$POD_CIDR"');
    expect(script.content).toContain('-s "$NODE_SUBNET" ! -d "$POD_CIDR" -j MASQUERADE');
  });

  it('node network nftables: non-pod sources and kube-proxy-marked packets for remote pods get the bridge address before any iptables NAT, and a guard after it', () => {
    const nft = fileAt(cluster.nodes.get('minion2')!, PATHS.nodeNetworkRules).content;
    expect(nft).toMatch(/^table ip kube-ipsec\ndelete table ip kube-ipsec\n/m);
    expect(nft).toMatch(/type nat hook postrouting priority srcnat - 10;/);
    const natChain = /chain pod-source-nat \{\n((?:\t\t.*\n)+)\t\}/
      .exec(nft)![1]!
      .trim()
      .split(/\n\t\t/);
    expect(natChain).toEqual([
      'type nat hook postrouting priority srcnat - 10; policy accept;',
      'ip daddr != 10.240.0.0/16 accept',
      'ip daddr 10.240.2.0/24 accept',
      'ip saddr != { 10.240.2.0/24 } counter snat to 10.240.2.1 comment "source outside the selectors"',
      'meta mark & 0x4000 == 0x4000 counter snat to 10.240.2.1 comment "marked for masquerade"',
    ]);
    // The mark is the one the rendered kube-proxy sets (its default bit, written out).
    expect(fileAt(cluster.nodes.get('minion2')!, '/var/lib/kube-proxy/config.yaml').content).toMatch(/iptables:\n\s+masqueradeBit: 14\n/);
    expect(nft).toMatch(/type filter hook postrouting priority srcnat \+ 10;/);
    expect(nft).toContain('oifname { "lo", "ipsec-br01" } accept');
    expect(nft).toContain('rt ipsec exists accept');
    expect(nft).not.toMatch(/^\t\t.*"ipsec0"/m); // a rule's; the comments may speak of it
    expect(nft).not.toContain('node traffic in clear');
    expect(fileAt(cluster.nodes.get('minion2')!, PATHS.nodeNetworkScript).content).toContain(`nft -f ${PATHS.nodeNetworkRules}`);
    const userspace = fileAt(render({ 'ipsec.espMode': 'userspace' }).cluster.nodes.get('minion2')!, PATHS.nodeNetworkRules).content;
    expect(userspace).toContain('oifname { "lo", "ipsec-br01", "ipsec0" } accept');
    const nodes = fileAt(render({ 'ipsec.nodeEncryption': true }).cluster.nodes.get('minion2')!, PATHS.nodeNetworkRules).content;
    expect(nodes).toContain('ip saddr != { 10.240.2.0/24,192.168.10.22/32 }');
    expect(nodes).toContain('ip daddr { 192.168.10.10,192.168.10.21,192.168.10.23 } udp dport { 500, 4500 } accept');
    expect(nodes).toContain('ip daddr { 192.168.10.10,192.168.10.21,192.168.10.23 } counter drop comment "node traffic in clear"');
  });

  it('node network nftables: what arrives from outside the node to or from the pod range came out of a tunnel, judged before any NAT', () => {
    const chain = (nft: string) =>
      /chain inbound \{\n((?:\t\t.*\n)+)\t\}/
        .exec(nft)![1]!
        .trim()
        .split(/\n\t\t/);
    const kernel = chain(fileAt(cluster.nodes.get('minion2')!, PATHS.nodeNetworkRules).content);
    expect(kernel).toEqual([
      // raw: before conntrack and before kube-proxy's DNAT (dstnat) rewrites a NodePort's address.
      'type filter hook prerouting priority raw; policy accept;',
      'iifname { "lo", "ipsec-br01" } accept',
      'meta ipsec exists accept',
      'ip saddr 10.240.0.0/16 counter drop comment "pod source arrived in clear"',
      'ip daddr 10.240.0.0/16 counter drop comment "pod destination arrived in clear"',
    ]);
    const userspace = chain(fileAt(render({ 'ipsec.espMode': 'userspace' }).cluster.nodes.get('minion2')!, PATHS.nodeNetworkRules).content);
    expect(userspace[1]).toBe('iifname { "lo", "ipsec-br01", "ipsec0" } accept');
    expect(userspace.slice(2)).toEqual(kernel.slice(2));
    // The master, without pods, refuses the same: its bridge address is in the pod range too.
    expect(chain(fileAt(cluster.nodes.get('master')!, PATHS.nodeNetworkRules).content)).toEqual(kernel);
  });

  it('bring-up order: node network → strongSwan → runtime → kubelet', () => {
    const files = cluster.nodes.get('minion1')!;
    const unit = (name: string) => unitSections(fileAt(files, `${PATHS.systemdDir}/${name}`).content).get('Unit')!;
    const dropIn = unitSections(fileAt(files, `${PATHS.systemdDir}/${UNITS.strongswan}.d/10-kube-ipsec.conf`).content).get('Unit')!;
    expect(dropIn.get('After')!.join(' ')).toContain(UNITS.nodeNetwork);
    expect(dropIn.get('Requires')!.join(' ')).toContain(UNITS.nodeNetwork);
    const kubeletAfter = unit(UNITS.kubelet).get('After')!.join(' ').split(' ');
    expect(kubeletAfter).toEqual(expect.arrayContaining([UNITS.nodeNetwork, UNITS.strongswan, UNITS.criDockerService]));
    expect(unit(UNITS.nodeNetwork).get('Before')!.join(' ').split(' ')).toEqual(expect.arrayContaining([UNITS.strongswan, UNITS.docker, UNITS.kubelet]));
    expect(shellVars(fileAt(files, PATHS.nodeEnv).content).UNITS!.split(' ')).toEqual([
      UNITS.nodeNetwork,
      UNITS.strongswan,
      UNITS.docker,
      UNITS.criDockerSocket,
      UNITS.criDockerService,
      UNITS.kubelet,
      UNITS.kubeProxy,
    ]);
  });

  it('out/README.md tables every node and tunnel and draws the mesh', () => {
    expect(cluster.readme).toContain('| minion3 | minion | 192.168.10.23 | 10.240.3.0/24 | 10.240.3.1 | 3 |');
    expect(cluster.readme).toContain('| master (192.168.10.10) ⇄ minion1 (192.168.10.21) | 10.240.0.0/24 ⇄ 10.240.1.0/24 |');
    expect(cluster.readme).toContain('```mermaid');
    expect(cluster.readme.match(/<-- IPsec -->/g)).toHaveLength(6);
    expect(cluster.readme).toContain('| `/etc/ipsec.secrets` | 0600 |');
  });

  it('is deterministic: the same inputs give the same bytes', () => {
    const a = render();
    const b = render();
    expect([...a.cluster.nodes]).toEqual([...b.cluster.nodes]);
    expect(a.cluster.readme).toBe(b.cluster.readme);
  });
});
