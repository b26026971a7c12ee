import { describe, expect, it } from 'vitest';
import { parseCluster } from '../../src/config/load.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { cidr, contains, formatCidr, nthSubnet, overlaps, parseCidr, parseIpv4 } from '../../src/plan/ipv4.ts';
import { clusterYaml, config, plan } from '../helpers/cluster.ts';

const subnetsOf = (p: ReturnType<typeof plan>) => Object.fromEntries(p.nodes.map((n) => [n.name, n.podSubnet]));

describe('addressing', () => {
  it('splits the pod range as the seeds do: master .0, minionN .N', () => {
    const p = plan();
    expect(subnetsOf(p)).toEqual({ master: '10.240.0.0/24', minion1: '10.240.1.0/24', minion2: '10.240.2.0/24', minion3: '10.240.3.0/24' });
    expect(p.nodes.map((n) => n.gatewayCidr)).toEqual(['10.240.0.1/24', '10.240.1.1/24', '10.240.2.1/24', '10.240.3.1/24']);
  });

  it("adding, removing or reordering nodes never moves another node's subnet", () => {
    const before = subnetsOf(plan());
    const nodes = config().nodes.map(({ name, role, ip }) => ({ name, role, ip }));
    const added = subnetsOf(plan({ nodes: [nodes[0], { name: 'minion7', ip: '192.168.10.27' }, ...nodes.slice(1)] }));
    const removed = subnetsOf(plan({ nodes: [nodes[0], nodes[1], nodes[3]] }));
    const reordered = subnetsOf(plan({ nodes: [...nodes].reverse() }));
    for (const after of [added, removed, reordered]) {
      for (const [name, subnet] of Object.entries(after)) if (name in before) expect(subnet).toBe(before[name]);
    }
    expect(added.minion7).toBe('10.240.7.0/24');
  });

  it('honours an explicit podSubnet', () => {
    const p = plan({ 'nodes.2.podSubnet': '10.240.200.0/24' });
    expect(p.nodes[2]).toMatchObject({ podSubnet: '10.240.200.0/24', gateway: '10.240.200.1' });
  });

  it('supports other node subnet sizes', () => {
    const p = plan({ 'network.nodeSubnetPrefix': 26 });
    expect(subnetsOf(p)).toEqual({ master: '10.240.0.0/26', minion1: '10.240.0.64/26', minion2: '10.240.0.128/26', minion3: '10.240.0.192/26' });
  });

  it('ipv4 helpers', () => {
    expect(parseIpv4('10.0.0.256')).toBeUndefined();
    expect(parseIpv4('01.2.3.4')).toBeUndefined();
    expect(parseCidr('10.1.0.0/16').ok).toBe(true);
    expect(formatCidr(nthSubnet(cidr('10.240.0.0/16'), 24, 255))).toBe('10.240.255.0/24');
    expect(overlaps(cidr('10.0.0.0/8'), cidr('10.200.0.0/16'))).toBe(true);
    expect(overlaps(cidr('10.0.0.0/16'), cidr('10.1.0.0/16'))).toBe(false);
    expect(contains(cidr('0.0.0.0/0'), parseIpv4('255.255.255.255')!)).toBe(true);
  });
});

describe('mesh', () => {
  it('is a full mesh: every node peers with every other, one tunnel per pair', () => {
    const p = plan();
    expect(p.tunnels).toHaveLength(6);
    for (const n of p.nodes) {
      expect(n.peers.map((x) => x.name).sort()).toEqual(
        p.nodes
          .filter((x) => x !== n)
          .map((x) => x.name)
          .sort(),
      );
      expect(n.peers.every((x) => x.conn === `${n.name}-${x.name}`)).toBe(true);
    }
    expect(new Set(p.tunnels.map((t) => `${t.a}|${t.b}`)).size).toBe(6);
  });

  it('the master is a mesh member with a pod subnet, but runs no pods', () => {
    const p = plan();
    expect(p.master).toMatchObject({ name: 'master', runsPods: false, podSubnet: '10.240.0.0/24' });
    expect(p.minions.every((m) => m.runsPods)).toBe(true);
  });
});

describe('derived values', () => {
  it('apiserver SANs: every name of the kubernetes service and the first service IP', () => {
    const p = plan({ 'cluster.domain': 'corp.example' });
    expect(p.network.kubernetesServiceIp).toBe('10.30.0.1');
    expect(p.apiserver.sans.dns).toEqual(
      expect.arrayContaining(['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.corp.example', 'master']),
    );
    expect(p.apiserver.sans.ips).toEqual(['10.30.0.1', '192.168.10.10', '127.0.0.1']);
    expect(p.apiserver.url).toBe('https://192.168.10.10:6443');
  });

  it('pod MTU: underlay minus ESP (77), minus NAT-T (8) and capped at 1400 in userspace, or explicit', () => {
    expect(plan().network.podMtu).toBe(1423);
    expect(plan({ 'network.underlayMtu': 9000 }).network.podMtu).toBe(8923);
    expect(plan({ 'ipsec.espMode': 'userspace' }).network.podMtu).toBe(1400);
    expect(plan({ 'ipsec.espMode': 'userspace', 'network.underlayMtu': 1450 }).network.podMtu).toBe(1365);
    expect(plan({ 'network.podMtu': 1300 }).network.podMtu).toBe(1300);
  });

  it('is a pure function of the configuration', () => {
    const text = clusterYaml();
    expect(planCluster(parseCluster(text))).toEqual(planCluster(parseCluster(text)));
  });
});
