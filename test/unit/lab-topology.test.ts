// The lab's pure planning: names, addresses and ip-batch lines from the plan, the one
// config override, the unit commands it runs and what it hands the plugin.
import { describe, expect, it } from 'vitest';
import { parseCluster } from '../../src/config/load.ts';
import { execStarts } from '../../src/lab/boot.ts';
import { cniEnv, pluginConfig } from '../../src/check/pods.ts';
import { withEspMode } from '../../src/lab/render.ts';
import { labNamespaces, labTopology, nodeBatch, ownedBy, upstreamAddress, validatePrefix, wireBatch } from '../../src/lab/topology.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { bigClusterYaml, clusterYaml, plan } from '../helpers/cluster.ts';

describe('lab topology', () => {
  const t = labTopology(plan(), 'ut');

  it('gives every node (master included) a namespace holding its real underlay address', () => {
    expect(t.nodes.map((n) => [n.name, n.ns, n.address])).toEqual([
      ['master', 'ut-master', '192.168.10.10/24'],
      ['minion1', 'ut-minion1', '192.168.10.21/24'],
      ['minion2', 'ut-minion2', '192.168.10.22/24'],
      ['minion3', 'ut-minion3', '192.168.10.23/24'],
    ]);
    expect(t.nodes.map((n) => n.podSubnet)).toEqual(['10.240.0.0/24', '10.240.1.0/24', '10.240.2.0/24', '10.240.3.0/24']);
  });

  it('puts pods on minions only, two each by default, with their own namespaces', () => {
    expect(t.nodes.find((n) => n.name === 'master')!.pods).toEqual([]);
    expect(t.nodes.find((n) => n.name === 'minion2')!.pods).toEqual([
      { node: 'minion2', name: 'minion2-pod1', ns: 'ut-minion2-pod1', containerId: 'ut-minion2-pod1' },
      { node: 'minion2', name: 'minion2-pod2', ns: 'ut-minion2-pod2', containerId: 'ut-minion2-pod2' },
    ]);
    expect(labTopology(plan(), 'ut', 3).nodes[1]!.pods).toHaveLength(3);
    expect(() => labTopology(plan(), 'ut', 0)).toThrow(/positive integer/);
  });

  it('chooses a free address of the node network for the upstream router', () => {
    expect(t.upstream).toMatchObject({ ns: 'ut-upstream', ip: '192.168.10.254', address: '192.168.10.254/24' });
    const taken = plan({
      nodes: [
        { name: 'master', role: 'master', ip: '192.168.10.254' },
        { name: 'minion1', ip: '192.168.10.253' },
      ],
    });
    expect(upstreamAddress(taken)).toBe('192.168.10.252');
    const tiny = plan({
      'network.nodeCidr': '192.168.10.8/30',
      nodes: [
        { name: 'master', role: 'master', ip: '192.168.10.9' },
        { name: 'minion1', ip: '192.168.10.10' },
      ],
    });
    expect(() => upstreamAddress(tiny)).toThrow(/no free address/);
  });

  it('prefixes every namespace and link, and keeps link names within 15 characters at any size', () => {
    const big = labTopology(planCluster(parseCluster(bigClusterYaml(250))), 'abcdefgh');
    const links = [big.wire.bridge, big.upstream.dev, big.upstream.port, ...big.nodes.flatMap((n) => [n.dev, n.port])];
    for (const name of [...labNamespaces(big), ...links]) expect(ownedBy('abcdefgh', name), name).toBe(true);
    for (const l of links) expect(l.length, l).toBeLessThanOrEqual(15);
    expect(new Set(big.nodes.map((n) => n.port)).size).toBe(big.nodes.length);
    expect(new Set(labNamespaces(big)).size).toBe(labNamespaces(big).length);
  });

  it('refuses prefixes that could reach beyond the lab', () => {
    for (const bad of ['', 'Lab', 'lab-1', 'toolongprefix', '1lab', 'a b']) expect(() => validatePrefix(bad), bad).toThrow(/prefix/);
    expect(() => validatePrefix('lab3fa1')).not.toThrow();
    expect(ownedBy('lab', 'lab1-wire')).toBe(false);
  });

  it('builds the underlay inside the wire namespace, far ends created directly in each machine', () => {
    expect(wireBatch(t)).toEqual([
      'link add ut-br mtu 1500 type bridge',
      'link set ut-br up',
      'link add ut-n0 mtu 1500 master ut-br up type veth peer name ut-eth mtu 1500 netns ut-master',
      'link add ut-n1 mtu 1500 master ut-br up type veth peer name ut-eth mtu 1500 netns ut-minion1',
      'link add ut-n2 mtu 1500 master ut-br up type veth peer name ut-eth mtu 1500 netns ut-minion2',
      'link add ut-n3 mtu 1500 master ut-br up type veth peer name ut-eth mtu 1500 netns ut-minion3',
      'link add ut-up mtu 1500 master ut-br up type veth peer name ut-eth mtu 1500 netns ut-upstream',
    ]);
    expect(nodeBatch(t, t.nodes[1]!)).toEqual([
      'link set lo up',
      'addr add 192.168.10.21/24 dev ut-eth',
      'link set ut-eth up',
      'route add default via 192.168.10.254 dev ut-eth',
    ]);
    expect(wireBatch(labTopology(plan({ 'network.underlayMtu': 9000 }), 'ut'))[0]).toBe('link add ut-br mtu 9000 type bridge');
  });
});

describe('the lab override', () => {
  it('sets ipsec.espMode and nothing else, keeping comments', () => {
    const text = clusterYaml();
    const edited = withEspMode(text, 'userspace');
    expect(parseCluster(edited).ipsec.espMode).toBe('userspace');
    expect({ ...parseCluster(edited), ipsec: { ...parseCluster(edited).ipsec, espMode: 'kernel' } }).toEqual(parseCluster(text));
    expect(edited).toContain('# kube-ipsec cluster description');
    const withoutKey = clusterYaml({ 'ipsec.espMode': undefined });
    expect(parseCluster(withEspMode(withoutKey, 'userspace')).ipsec.espMode).toBe('userspace');
  });
});

describe('what the lab runs on a node', () => {
  it('reads ExecStart lines as argv, honouring systemd prefixes', () => {
    expect(execStarts('[Service]\nType=oneshot\nExecStart=/usr/local/lib/kube-ipsec/node-network\n')).toEqual([
      { argv: ['/usr/local/lib/kube-ipsec/node-network'], ignoreFailure: false },
    ]);
    expect(execStarts('ExecStart=-/bin/true a \\\n  b\nExecStart=@/bin/x y\n')).toEqual([
      { argv: ['/bin/true', 'a', 'b'], ignoreFailure: true },
      { argv: ['/bin/x', 'y'], ignoreFailure: false },
    ]);
  });

  it('hands the plugin its conflist entry the way libcni does', () => {
    const conflist = JSON.stringify({ cniVersion: '1.1.0', name: 'kube-ipsec', plugins: [{ type: 'ipsec-cni', mtu: 1400 }, { type: 'portmap' }] });
    expect(JSON.parse(pluginConfig(conflist))).toEqual({ cniVersion: '1.1.0', name: 'kube-ipsec', type: 'ipsec-cni', mtu: 1400 });
    // The rendered list: 1.0.0 for older runtimes, cniVersions for a CNI 1.1 one, which takes the highest (GC needs it).
    const rendered = JSON.stringify({ cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: 'kube-ipsec', plugins: [{ type: 'ipsec-cni' }] });
    expect(JSON.parse(pluginConfig(rendered)).cniVersion).toBe('1.1.0');
    const env = cniEnv('ADD', { node: 'minion1', name: 'minion1-pod1', ns: 'ut-minion1-pod1', containerId: 'cid' });
    expect(env).toMatchObject({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'cid',
      CNI_NETNS: '/run/netns/ut-minion1-pod1',
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/opt/cni/bin',
    });
    expect(env.CNI_ARGS).toContain('K8S_POD_NAME=minion1-pod1');
  });
});
