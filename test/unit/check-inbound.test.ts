// The inbound check's pure parts: what it refuses to craft, whom it attacks from where and
// posing as whom, what must still answer, and the verdict on what it saw. The crafted frames
// against tcpdump and a real shell are in test/integration/check-inbound-frames.test.ts.
import { describe, expect, it } from 'vitest';
import {
  attackerOf,
  inboundControls,
  inboundNotApplicable,
  inboundProbes,
  inboundResult,
  isAnswer,
  isProbePacket,
  linkHolding,
  type InboundSeen,
} from '../../src/check/checks/inbound.ts';
import { serviceAddress } from '../../src/check/checks/sources.ts';
import { craftFrame, type CraftedPacket } from '../../src/check/frames.ts';
import type { CheckTopology } from '../../src/check/target.ts';
import { labTopology } from '../../src/lab/topology.ts';
import { plan } from '../helpers/cluster.ts';

const t = labTopology(plan(), 'ut');
const podIps = Object.fromEntries(t.nodes.flatMap((n) => n.pods.map((p, k) => [p.ns, { ip: n.podSubnet.replace(/0\/24$/, String(k + 2)) }])));
const { upstream: _upstream, ...withoutUpstream } = t;
/** A provisioned cluster as `kube-ipsec check` sees it: no machine outside the cluster. */
const cluster: CheckTopology = withoutUpstream;

const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };
const icmp: CraftedPacket = { ...MACS, src: '192.168.10.254', dst: '10.240.1.2', proto: 'icmp', tag: 40000 };
const syn: CraftedPacket = { ...MACS, src: '10.240.2.2', dst: '10.240.1.2', proto: 'tcp', tag: 40003, dport: 8080 };

describe('crafted frames', () => {
  it('refuses what it cannot write', () => {
    expect(() => craftFrame({ ...icmp, srcMac: '02:00:00:00:00' })).toThrow("not a MAC address: '02:00:00:00:00'");
    expect(() => craftFrame({ ...icmp, dst: '10.240.1.300' })).toThrow("not an IPv4 address: '10.240.1.300'");
    expect(() => craftFrame({ ...icmp, tag: 0 })).toThrow('tag 0 must be 1-65535');
    expect(() => craftFrame({ ...syn, dport: undefined })).toThrow('a TCP SYN needs a destination port');
  });
});

describe('whom the check attacks, from where, posing as whom', () => {
  it('in the labs: the upstream router attacks the first pod of every minion, with its own address and as the next minion’s first pod', () => {
    const probes = inboundProbes(t, podIps);
    expect(probes.map((p) => p.label)).toEqual([
      'upstream 192.168.10.254: ICMP echo → minion1-pod1 10.240.1.2 via minion1',
      'upstream 192.168.10.254: TCP SYN → minion1-pod1 10.240.1.2:8080 via minion1',
      'upstream posing as minion2-pod1 10.240.2.2: ICMP echo → minion1-pod1 10.240.1.2 via minion1',
      'upstream posing as minion2-pod1 10.240.2.2: TCP SYN → minion1-pod1 10.240.1.2:8080 via minion1',
      'upstream 192.168.10.254: ICMP echo → minion2-pod1 10.240.2.2 via minion2',
      'upstream 192.168.10.254: TCP SYN → minion2-pod1 10.240.2.2:8080 via minion2',
      'upstream posing as minion3-pod1 10.240.3.2: ICMP echo → minion2-pod1 10.240.2.2 via minion2',
      'upstream posing as minion3-pod1 10.240.3.2: TCP SYN → minion2-pod1 10.240.2.2:8080 via minion2',
      'upstream 192.168.10.254: ICMP echo → minion3-pod1 10.240.3.2 via minion3',
      'upstream 192.168.10.254: TCP SYN → minion3-pod1 10.240.3.2:8080 via minion3',
      'upstream posing as minion1-pod1 10.240.1.2: ICMP echo → minion3-pod1 10.240.3.2 via minion3',
      'upstream posing as minion1-pod1 10.240.1.2: TCP SYN → minion3-pod1 10.240.3.2:8080 via minion3',
    ]);
    expect(new Set(probes.map((p) => p.tag)).size).toBe(12);
    expect(probes[2]!.posingAs).toEqual({ name: 'minion2-pod1', pod: t.nodes[2]!.pods[0] });
    expect(inboundNotApplicable(t)).toBeUndefined();
  });

  it('on a cluster without an outside machine: the master’s root attacks (a compromised node)', () => {
    const probes = inboundProbes(cluster, podIps);
    expect(probes).toHaveLength(12);
    expect(new Set(probes.map((p) => p.attacker.name))).toEqual(new Set(['master']));
    expect(probes[0]!.label).toBe('master 192.168.10.10: ICMP echo → minion1-pod1 10.240.1.2 via minion1');
    // A cluster of minions only: the next minion attacks.
    const minions = { ...cluster, nodes: cluster.nodes.filter((n) => n.role === 'minion') };
    expect(attackerOf(minions, minions.nodes[0]!)).toEqual({ name: 'minion2', ns: 'ut-minion2', ip: '192.168.10.22' });
  });

  it('with one minion, it poses as another node’s bridge address; with no one to attack from, it does not apply', () => {
    const two = { ...cluster, nodes: cluster.nodes.slice(0, 2) };
    const probes = inboundProbes(two, podIps);
    expect(probes.map((p) => p.label).slice(2)).toEqual([
      'master posing as master (bridge) 10.240.0.1: ICMP echo → minion1-pod1 10.240.1.2 via minion1',
      'master posing as master (bridge) 10.240.0.1: TCP SYN → minion1-pod1 10.240.1.2:8080 via minion1',
    ]);
    expect(probes[2]!.posingAs).toEqual({ name: 'master (bridge)' });
    expect(inboundNotApplicable({ ...cluster, nodes: cluster.nodes.slice(1, 2) })).toBe(
      'no machine to attack the pods from: one node and no machine outside the cluster',
    );
    expect(inboundNotApplicable({ ...cluster, nodes: cluster.nodes.slice(0, 1) })).toBe('no node runs pods');
  });

  it('what must still answer: a NodePort on the node address from the attacker, the node itself, the other pod on the bridge', () => {
    const controls = inboundControls(t, podIps);
    expect(controls.map((c) => [c.kind, c.ns, `${c.dst}:${c.port}`, c.token])).toEqual([
      ['nodeport', 'ut-upstream', '192.168.10.21:32764', 'minion1-pod1'],
      ['node', 'ut-minion1', '10.240.1.2:8080', 'minion1-pod1'],
      ['bridge', 'ut-minion1-pod2', '10.240.1.2:8080', 'minion1-pod1'],
      ['nodeport', 'ut-upstream', '192.168.10.22:32763', 'minion2-pod1'],
      ['node', 'ut-minion2', '10.240.2.2:8080', 'minion2-pod1'],
      ['bridge', 'ut-minion2-pod2', '10.240.2.2:8080', 'minion2-pod1'],
      ['nodeport', 'ut-upstream', '192.168.10.23:32762', 'minion3-pod1'],
      ['node', 'ut-minion3', '10.240.3.2:8080', 'minion3-pod1'],
      ['bridge', 'ut-minion3-pod2', '10.240.3.2:8080', 'minion3-pod1'],
    ]);
    // Its services never share an address or NodePort with the sources check's.
    const theirs = [0, 1, 2].map((j) => serviceAddress(t.serviceCidr, j));
    for (const c of controls.filter((x) => x.service)) {
      expect(theirs.map((s) => s.nodePort)).not.toContain(c.service!.nodePort);
      expect(theirs.map((s) => s.clusterIp)).not.toContain(c.service!.clusterIp.ip);
      expect(c.service!.endpoint).toEqual({ ip: podIps[`ut-${c.token}`]!.ip, port: 8080 });
    }
  });

  it('finds the sender’s and the next hop’s link by the address it holds (`ip -j addr show`, trimmed)', () => {
    const json = JSON.stringify([
      {
        ifindex: 1,
        ifname: 'lo',
        link_type: 'loopback',
        address: '00:00:00:00:00:00',
        addr_info: [
          { family: 'inet', local: '127.0.0.1', prefixlen: 8 },
          { family: 'inet6', local: '::1', prefixlen: 128 },
        ],
      },
      {
        ifindex: 3,
        link: 'ut-n1',
        ifname: 'ut-eth',
        link_type: 'ether',
        address: 'be:57:f6:56:ff:6c',
        addr_info: [{ family: 'inet', local: '192.168.10.21', prefixlen: 24 }],
      },
      {
        ifindex: 4,
        ifname: 'ipsec-br01',
        link_type: 'ether',
        address: '36:61:b4:b5:6c:e4',
        addr_info: [{ family: 'inet', local: '10.240.1.1', prefixlen: 24 }],
      },
      { ifindex: 5, ifname: 'tun0', link_type: 'none', addr_info: [{ family: 'inet', local: '172.16.0.1', prefixlen: 32 }] },
    ]);
    expect(linkHolding(json, '192.168.10.21')).toEqual({ dev: 'ut-eth', mac: 'be:57:f6:56:ff:6c' });
    expect(linkHolding(json, '172.16.0.1')).toEqual({ dev: 'tun0' });
    expect(linkHolding(json, '192.168.10.22')).toBeUndefined();
  });
});

describe('the verdict', () => {
  const probes = inboundProbes(t, podIps);
  const controls = inboundControls(t, podIps);
  const pod1 = (node: number) => t.nodes[node]!.pods[0]!.ns;
  const healthy = (): InboundSeen => ({
    pods: Object.fromEntries(t.nodes.flatMap((n) => n.pods.slice(0, 1).map((p) => [p.ns, []]))),
    attackers: { upstream: [] },
    counted: { minion1: 4, minion2: 4, minion3: 4 },
    controls: controls.map(() => true),
  });

  it('recognises the probe packets and their answers in tcpdump lines', () => {
    const [echo, tcp, spoofedEcho, spoofedTcp] = probes as [(typeof probes)[0], (typeof probes)[0], (typeof probes)[0], (typeof probes)[0]];
    expect(isProbePacket(echo, 'IP 192.168.10.254 > 10.240.1.2: ICMP echo request, id 40000, seq 1, length 24')).toBe(true);
    expect(isProbePacket(echo, 'IP 192.168.10.254 > 10.240.1.2: ICMP echo request, id 4000, seq 1, length 24')).toBe(false);
    expect(isProbePacket(tcp, 'IP 192.168.10.254.40001 > 10.240.1.2.8080: Flags [S], seq 40001, win 65535, length 0')).toBe(true);
    expect(isProbePacket(tcp, 'IP 192.168.10.254.40001 > 10.240.1.2.8080: Flags [R], seq 40002, win 0, length 0')).toBe(false);
    expect(isAnswer(echo, 'IP 10.240.1.2 > 192.168.10.254: ICMP echo reply, id 40000, seq 1, length 24')).toBe(true);
    expect(isAnswer(tcp, 'IP 10.240.1.2.8080 > 192.168.10.254.40001: Flags [S.], seq 1, ack 40002, win 64240, options [mss 1460], length 0')).toBe(true);
    expect(isAnswer(spoofedTcp, 'IP 10.240.1.2.8080 > 10.240.2.2.40003: Flags [S.], seq 1, ack 40004, win 64240, length 0')).toBe(true);
    expect(isAnswer(spoofedEcho, 'IP 10.240.1.2 > 10.240.2.2: ICMP echo reply, id 40000, seq 1, length 24')).toBe(false);
  });

  it('passes when every crafted packet was counted and none arrived, and what must still answer did', () => {
    const r = inboundResult(probes, controls, healthy());
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.summary).toBe(
      "12/12 crafted clear-text packets to pods kept out (12 counted by the nodes' inbound chains, 0 answered); 9/9 connections that must still reach the pods answered (NodePort, node, bridge)",
    );
    expect(r.lines![0]).toBe('minion1: 4/4 crafted clear-text packets to minion1-pod1 kept out, 4 counted; nodeport answered, node answered, bridge answered');
    expect(r.values).toEqual({ probes: 12, arrived: 0, answered: 0, counted: 12, controls: 9, controlsAnswered: 9 });
  });

  it('fails a node without the chain, naming what reached its pod and whom the answers reached through the tunnel', () => {
    const seen = healthy();
    seen.counted.minion1 = undefined;
    seen.pods[pod1(1)] = [
      'IP 192.168.10.254 > 10.240.1.2: ICMP echo request, id 40000, seq 1, length 24',
      'IP 192.168.10.254.40001 > 10.240.1.2.8080: Flags [S], seq 40001, win 65535, length 0',
      'IP 10.240.1.2.8080 > 192.168.10.254.40001: Flags [S.], seq 1, ack 40002, win 64240, length 0',
      'IP 10.240.2.2 > 10.240.1.2: ICMP echo request, id 40002, seq 1, length 24',
      'IP 10.240.2.2.40003 > 10.240.1.2.8080: Flags [S], seq 40003, win 65535, length 0',
    ];
    seen.pods[pod1(2)] = [
      'IP 10.240.1.2 > 10.240.2.2: ICMP echo reply, id 40002, seq 1, length 24',
      'IP 10.240.1.2.8080 > 10.240.2.2.40003: Flags [S.], seq 1, ack 40004, win 64240, length 0',
    ];
    const r = inboundResult(probes, controls, seen);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "minion1: 4/4 clear-text packets from outside reached minion1-pod1 10.240.1.2, 2 answered (minion2-pod1 got answers to packets it never sent, through the tunnel), e.g. upstream 192.168.10.254: ICMP echo → minion1-pod1 10.240.1.2 via minion1: minion1's node network must drop what arrives from outside to or from the pod range unless it came out of a tunnel (nft table kube-ipsec, chain inbound); minion1 has no inbound chain (`nft list chain ip kube-ipsec inbound` fails there)",
    ]);
    expect(r.lines![0]).toBe(
      'minion1: 0/4 crafted clear-text packets to minion1-pod1 kept out, no inbound chain; nodeport answered, node answered, bridge answered',
    );
    expect(r.values).toMatchObject({ arrived: 4, answered: 2, counted: 8 });
  });

  it('fails when the crafted packets went nowhere: neither in the pod nor counted proves nothing', () => {
    const seen = healthy();
    seen.counted.minion2 = 1;
    const r = inboundResult(probes, controls, seen);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "minion2: none of the 4 crafted packets reached minion2-pod1, but its inbound chain counted 1: they did not arrive (upstream's link to minion2?), so nothing was shown",
    ]);
  });

  it('fails a NodePort the node no longer answers (a rule judging after kube-proxy’s DNAT)', () => {
    const seen = healthy();
    seen.controls[0] = false;
    const r = inboundResult(probes, controls, seen);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "upstream → minion1 192.168.10.21:32764 (NodePort → minion1-pod1) unanswered: a NodePort on the node's address, from the attacker (kube-proxy's DNAT after the inbound chain) must still reach the pod (nft table kube-ipsec, chain inbound lets through what is addressed to the node, comes from the node, or from the bridge)",
    ]);
    expect(r.lines![0]).toMatch(/; nodeport UNANSWERED, node answered, bridge answered$/);
  });

  it('fails when there is nothing to attack', () => {
    const r = inboundResult([], [], { pods: {}, attackers: {}, counted: {}, controls: [] });
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(['no pod to send to, or no machine to send from']);
  });
});
