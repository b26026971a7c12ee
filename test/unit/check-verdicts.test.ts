// How the lab reads what it observes (swanctl, tcpdump, iptables, ip route) and turns it into
// verdicts whose messages point at the cause. Fixtures are real outputs from a lab run.
import { guardDropped, parseGuardCounts } from '../../src/check/guard.ts';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyCapture, echoSources } from '../../src/check/capture.ts';
import { blackholeCovers, failClosedResult, recoveryFlows, victimFlows, type FailClosedMeasure } from '../../src/check/checks/fail-closed.ts';
import { masqueradeResult, type MasqueradeCase } from '../../src/check/checks/masquerade.ts';
import { largestPassing, mtuResult } from '../../src/check/checks/mtu.ts';
import { captureResult, pingProbes, pingsResult } from '../../src/check/checks/traffic.ts';
import { tunnelsResult } from '../../src/check/checks/tunnels.ts';
import { connProblem, evaluateMesh, type NodeSas } from '../../src/check/mesh.ts';
import { egressRewrites, explainPodToPodRewrite, parseNatRules, podToPodRewrites } from '../../src/check/nat.ts';
import { formatMatrix, formatReport, report } from '../../src/check/report.ts';
import { labTopology, type LabNode } from '../../src/lab/topology.ts';
import { conns, ikeSas, parseViciPretty, type IkeSa } from '../../src/check/vici.ts';
import { plan } from '../helpers/cluster.ts';

const fixture = (name: string) => readFileSync(new URL(`./check-fixtures/${name}`, import.meta.url), 'utf8');
const t = labTopology(plan(), 'ut');
const [master, minion1, minion2, minion3] = t.nodes as [LabNode, LabNode, LabNode, LabNode];
const podIps = Object.fromEntries(t.nodes.flatMap((n) => n.pods.map((p, k) => [p.ns, { ip: n.podSubnet.replace(/0\/24$/, String(k + 2)) }])));

/** A healthy end: one IKE_SA and one CHILD_SA with the planned selectors to every peer. */
function healthy(node: LabNode): NodeSas {
  return {
    sas: t.nodes
      .filter((p) => p !== node)
      .map(
        (p): IkeSa => ({
          conn: `${node.name}-${p.name}`,
          state: 'ESTABLISHED',
          initiator: node.name < p.name,
          spis: `${node.name}/${p.name}`,
          remoteHost: p.ip,
          children: [
            { name: `${node.name}-${p.name}`, state: 'INSTALLED', spiIn: `${node.name}${p.name}`, localTs: [node.podSubnet], remoteTs: [p.podSubnet] },
          ],
        }),
      ),
    conns: t.nodes
      .filter((p) => p !== node)
      .map((p) => ({
        name: `${node.name}-${p.name}`,
        localAddrs: [node.ip],
        remoteAddrs: [p.ip],
        children: [{ name: `${node.name}-${p.name}`, localTs: [node.podSubnet], remoteTs: [p.podSubnet] }],
      })),
  };
}
const allHealthy = () => new Map(t.nodes.map((n) => [n.name, healthy(n)]));

describe('swanctl --pretty', () => {
  it('parses the SAs of a node, duplicates and half-open ones included', () => {
    const sas = ikeSas(fixture('list-sas.txt'));
    expect(sas.map((s) => [s.conn, s.state, s.remoteHost])).toEqual([
      ['minion1-minion3', 'ESTABLISHED', '192.168.10.23'],
      ['minion1-minion2', 'ESTABLISHED', '192.168.10.22'],
      ['minion1-minion3', 'CONNECTING', '192.168.10.23'],
      ['minion1-master', 'ESTABLISHED', '192.168.10.10'],
      ['minion1-minion2', 'ESTABLISHED', '192.168.10.22'],
      ['minion1-master', 'ESTABLISHED', '192.168.10.10'],
    ]);
    expect(sas[0]).toMatchObject({ spis: '946738d0db960ea5/32901904f07a324c', rekeyIn: 10177 });
    expect(sas[0]!.children).toEqual([
      { name: 'minion1-minion3', state: 'INSTALLED', spiIn: '9292c91f', rekeyIn: 2704, localTs: ['10.240.1.0/24'], remoteTs: ['10.240.3.0/24'] },
    ]);
    expect(sas[2]!.children).toEqual([]);
  });

  it('parses the loaded connections with their selectors', () => {
    const cs = conns(fixture('list-conns.txt'));
    expect(cs.map((c) => [c.name, c.remoteAddrs, c.children.map((x) => `${x.localTs} === ${x.remoteTs}`)])).toEqual([
      ['minion1-master', ['192.168.10.10'], ['10.240.1.0/24 === 10.240.0.0/24']],
      ['minion1-minion2', ['192.168.10.22'], ['10.240.1.0/24 === 10.240.2.0/24']],
      ['minion1-minion3', ['192.168.10.23'], ['10.240.1.0/24 === 10.240.3.0/24']],
    ]);
  });

  it('keeps empty lists and nested sections apart', () => {
    const [m] = parseViciPretty(
      'list-conn event {\n  c {\n    groups = [\n    ]\n    certs = [\n      O=kube-ipsec, CN=minion1\n    ]\n    local-1 {\n      id = minion1\n    }\n  }\n}\n',
    );
    expect(m).toEqual({ type: 'list-conn event', body: { c: { groups: [], certs: ['O=kube-ipsec, CN=minion1'], 'local-1': { id: 'minion1' } } } });
  });
});

describe('mesh state', () => {
  it('counts a pair with duplicate SAs (both ends initiated) as up but not whole, and says why', () => {
    const byNode = allHealthy();
    byNode.set('minion1', { sas: ikeSas(fixture('list-sas.txt')) });
    const pairs = evaluateMesh(t, byNode);
    expect(pairs).toHaveLength(6);
    expect(pairs.every((p) => p.up)).toBe(true);
    const m = pairs.find((p) => p.a === 'master' && p.b === 'minion1')!;
    expect(m.ends.minion1).toEqual({ ike: 2, child: 2, initiated: 1 });
    expect(m.single).toBe(false);
    expect(m.problem).toBe(
      'master ↔ minion1: master holds 1 IKE_SAs / 1 CHILD_SAs with minion1, minion1 2 / 2, one of each expected: both ends initiated one (master 1, minion1 1): auto=start at both ends of the pair in ipsec.conf, or a re-authentication (reauth=yes) that left the old IKE_SA in place',
    );
    const result = tunnelsResult(t, pairs, { boundS: 30 });
    expect(result.ok).toBe(false);
    expect(result.summary).toBe('4/6 node pairs with exactly one IKE_SA and one CHILD_SA at both ends; not settled within 30 s');
    expect(result.lines![2]).toMatch(/^minion1\s+2\/2\s+·\s+2\/2\s+1\/1$/);
    const whole = tunnelsResult(t, evaluateMesh(t, allHealthy()), { seconds: 0.4, boundS: 30 });
    expect(whole).toMatchObject({
      ok: true,
      summary: '6/6 node pairs with exactly one IKE_SA and one CHILD_SA at both ends; settled 0.4 s after the check began (bound 30 s)',
    });
  });

  it('names a charon that does not answer', () => {
    const byNode = allHealthy();
    byNode.set('minion2', { sas: [], error: "connecting to 'unix:///var/run/charon.vici' failed: No such file or directory" });
    const down = evaluateMesh(t, byNode).filter((p) => !p.up);
    expect(down).toHaveLength(3);
    expect(down[0]!.problem).toMatch(/charon on minion2 does not answer .*strongSwan is not running there/);
  });

  it('points a refused CHILD_SA at the selector that disagrees with the plan', () => {
    const byNode = allHealthy();
    const m1 = healthy(minion1);
    m1.conns!.find((c) => c.name === 'minion1-minion2')!.children[0]!.remoteTs = ['10.240.9.0/24'];
    m1.sas.find((s) => s.remoteHost === minion2.ip)!.children = [];
    byNode.set('minion1', m1);
    byNode.get('minion2')!.sas.find((s) => s.remoteHost === minion1.ip)!.children = [];
    const pairs = evaluateMesh(t, byNode);
    expect(pairs.filter((p) => !p.up).map((p) => p.problem)).toEqual([
      "minion1 ↔ minion2: minion1's conn minion1-minion2 expects minion2's pods at 10.240.9.0/24 (rightsubnet in minion1's /etc/ipsec.conf), but minion2's pod subnet is 10.240.2.0/24: the CHILD_SA is refused (TS_UNACCEPTABLE)",
    ]);
    const result = tunnelsResult(t, pairs, { boundS: 30 });
    expect(result.ok).toBe(false);
    expect(result.summary).toBe('5/6 node pairs with exactly one IKE_SA and one CHILD_SA at both ends; not settled within 30 s');
    expect(result.lines!.find((l) => l.startsWith('minion1'))).toContain('1/0 ✗');
  });

  it('tells an own selector, a missing connection and a stuck IKE_SA apart', () => {
    expect(
      connProblem(minion1, minion2, [
        { name: 'x', localAddrs: [], remoteAddrs: [minion2.ip], children: [{ name: 'x', localTs: ['10.240.7.0/24'], remoteTs: [minion2.podSubnet] }] },
      ]),
    ).toMatch(/offers 10.240.7.0\/24 as its own pods \(leftsubnet/);
    expect(connProblem(minion1, minion2, [])).toBe('minion1 has no connection to minion2 (192.168.10.22) in its /etc/ipsec.conf');
    const byNode = allHealthy();
    for (const [n, peer] of [
      [minion3, master],
      [master, minion3],
    ] as const) {
      const sa = byNode.get(n.name)!.sas.find((s) => s.remoteHost === peer.ip)!;
      Object.assign(sa, { state: 'CONNECTING', children: [] });
    }
    const p = evaluateMesh(t, byNode).find((x) => !x.up)!;
    expect(p.problem).toMatch(/master ↔ minion3: IKE_SA not established \(master: CONNECTING, minion3: CONNECTING\)/);
  });
});

describe('underlay capture', () => {
  it('classifies a real capture: IKE (also port-unreachable answers during a restart), ESP, ARP/IPv6', () => {
    const s = classifyCapture(fixture('underlay.txt').split('\n').filter(Boolean), '10.240.0.0/16');
    expect(s).toMatchObject({ esp: 4, clearPod: [] });
    expect(s.ike).toBeGreaterThan(30);
    expect(s.linkLocal).toBeGreaterThan(20);
    // The fixture's last ping went from minion1 itself to the upstream router: clear, but no pod traffic.
    expect(s.otherIp).toEqual([
      'IP 192.168.10.21 > 192.168.10.254: ICMP echo request, id 12842, seq 1, length 64',
      'IP 192.168.10.254 > 192.168.10.21: ICMP echo reply, id 12842, seq 1, length 64',
    ]);
    expect(s.total).toBe(s.esp + s.ike + s.linkLocal + s.otherIp.length);
  });

  it('finds clear-text pod packets and other stray IPv4, and says who talked', () => {
    const lines = [
      'IP 192.168.10.21.4500 > 192.168.10.22.4500: UDP-encap: ESP(spi=0xac565620,seq=0x1), length 120',
      'IP 192.168.10.21 > 192.168.10.22: ESP(spi=0x1,seq=0x1), length 100',
      'IP 10.240.1.2 > 10.240.2.2: ICMP echo request, id 23650, seq 1, length 64',
      'IP 10.240.1.2 > 10.240.2.2: ICMP echo request, id 23650, seq 2, length 64',
      'IP 192.168.10.21 > 10.240.2.3: ICMP echo request, id 1, seq 1, length 64',
      'IP 192.168.10.21.53 > 192.168.10.254.53: UDP, length 30',
      // A port coming up on the underlay bridge reports its multicast groups: link-local, not a leak.
      'IP 0.0.0.0 > 224.0.0.22: igmp v3 report, 1 group record(s)',
    ];
    const s = classifyCapture(lines, '10.240.0.0/16');
    expect(s).toMatchObject({ total: 7, esp: 2, ike: 0, linkLocal: 1 });
    expect(s.clearPod).toHaveLength(3);
    expect(s.otherIp).toEqual(['IP 192.168.10.21.53 > 192.168.10.254.53: UDP, length 30']);
    const book = new Map([
      ['10.240.1.2', 'minion1-pod1'],
      ['10.240.2.2', 'minion2-pod1'],
      ['192.168.10.21', 'minion1'],
    ]);
    const r = captureResult(s, 42, book);
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toBe(
      '2 clear-text pod packets on the underlay: minion1-pod1 10.240.1.2 → minion2-pod1 10.240.2.2 (ICMP), e.g. `IP 10.240.1.2 > 10.240.2.2: ICMP echo request, id 23650, seq 1, length 64`',
    );
    expect(r.problems[1]).toMatch(/^1 clear-text pod packets on the underlay: minion1 192.168.10.21 → 10.240.2.3/);
    // The nodes' own traffic (here DNS) is outside what the mesh encrypts by default: counted, not a problem.
    expect(r.problems).toHaveLength(2);
    expect(r.summary).toMatch(/, 1 other IPv4,/);
  });

  it('fails a capture that saw no ESP at all (it proves nothing)', () => {
    const r = captureResult(classifyCapture(['ARP, Request who-has 192.168.10.22 tell 192.168.10.21, length 28'], '10.240.0.0/16'), 42, new Map());
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(['no ESP on the underlay during 42 pings: the capture saw no encrypted pod traffic at all']);
  });

  it('reads echo request sources', () => {
    expect(
      echoSources([
        'IP 192.168.10.21 > 192.168.10.254: ICMP echo request, id 1, seq 1, length 64',
        'IP 192.168.10.254 > 192.168.10.21: ICMP echo reply, id 1, seq 1, length 64',
      ]),
    ).toEqual([{ src: '192.168.10.21', dst: '192.168.10.254' }]);
  });
});

describe('ping matrix', () => {
  const probes = pingProbes(t, podIps);

  it('sends every pod and every node to every pod of the other nodes', () => {
    // 6 pods × 4 remote pods + master × 6 + 3 minions × 4
    expect(probes).toHaveLength(24 + 6 + 12);
    expect(probes.filter((p) => p.fromNode === 'minion1').every((p) => p.toNode !== 'minion1')).toBe(true);
  });

  it('shows replies per source row and destination node and names the failing tunnel', () => {
    const pairs = evaluateMesh(t, allHealthy()).map((p) => (p.a === 'minion1' && p.b === 'minion2' ? { ...p, up: false } : p));
    const ok = probes.map((p) => !(p.fromNode === 'minion1' && p.toNode === 'minion2'));
    const r = pingsResult(t, probes, ok, pairs);
    expect(r.ok).toBe(false);
    expect(r.summary).toBe('36/42 pings answered (every pod → every remote pod, every node → every remote pod)');
    expect(r.lines!.find((l) => l.startsWith('minion1 pods'))).toMatch(/·\s+0\/4\s+4\/4$/);
    expect(r.problems).toEqual([
      'minion1 (node) → minion2 pods: 2/2 pings unanswered, e.g. minion1 → 10.240.2.2, minion1 → 10.240.2.3 (the tunnel minion1 ↔ minion2 is not up: see tunnels)',
      'minion1 pods → minion2 pods: 4/4 pings unanswered, e.g. minion1-pod1 → 10.240.2.2, minion1-pod1 → 10.240.2.3 (the tunnel minion1 ↔ minion2 is not up: see tunnels)',
    ]);
  });
});

describe('source NAT rules', () => {
  const good =
    '-P POSTROUTING ACCEPT\n-N KUBE-IPSEC-POSTROUTING\n-A POSTROUTING -j KUBE-IPSEC-POSTROUTING\n-A KUBE-IPSEC-POSTROUTING -s 10.240.1.0/24 ! -d 10.240.0.0/16 -j MASQUERADE\n';
  const naive = good.replace(' ! -d 10.240.0.0/16', '');

  it('parses rules with negations', () => {
    expect(parseNatRules(good)).toEqual([
      { text: '-A POSTROUTING -j KUBE-IPSEC-POSTROUTING', chain: 'POSTROUTING', target: 'KUBE-IPSEC-POSTROUTING' },
      {
        text: '-A KUBE-IPSEC-POSTROUTING -s 10.240.1.0/24 ! -d 10.240.0.0/16 -j MASQUERADE',
        chain: 'KUBE-IPSEC-POSTROUTING',
        target: 'MASQUERADE',
        src: { negated: false, cidr: { base: 0x0af00100, prefix: 24 }, text: '10.240.1.0/24' },
        dst: { negated: true, cidr: { base: 0x0af00000, prefix: 16 }, text: '10.240.0.0/16' },
      },
    ]);
  });

  it('knows which rules rewrite pod→pod traffic and which masquerade egress', () => {
    expect(podToPodRewrites(parseNatRules(good), '10.240.1.0/24', '10.240.0.0/16')).toEqual([]);
    expect(egressRewrites(parseNatRules(good), '10.240.1.0/24', '192.168.10.254')).toHaveLength(1);
    expect(podToPodRewrites(parseNatRules(naive), '10.240.1.0/24', '10.240.0.0/16')).toHaveLength(1);
    expect(
      podToPodRewrites(parseNatRules('-A POSTROUTING -s 10.240.1.0/24 ! -d 10.240.1.0/24 -j SNAT --to-source 192.168.10.21'), '10.240.1.0/24', '10.240.0.0/16'),
    ).toHaveLength(1);
    expect(
      podToPodRewrites(
        parseNatRules('-A POSTROUTING -s 10.240.2.0/24 -j MASQUERADE\n-A POSTROUTING -d 10.240.0.0/16 -j ACCEPT'),
        '10.240.1.0/24',
        '10.240.0.0/16',
      ),
    ).toEqual([]);
    expect(egressRewrites(parseNatRules('-A POSTROUTING -s 10.240.2.0/24 -j MASQUERADE'), '10.240.1.0/24', '192.168.10.254')).toEqual([]);
  });

  it('explains the rewrite with the rule and the missing exclusion', () => {
    expect(explainPodToPodRewrite(parseNatRules(good), '10.240.1.0/24', '10.240.0.0/16')).toBeUndefined();
    expect(explainPodToPodRewrite(parseNatRules(naive), '10.240.1.0/24', '10.240.0.0/16')).toBe(
      'the nat rule `-A KUBE-IPSEC-POSTROUTING -s 10.240.1.0/24 -j MASQUERADE` also rewrites pod→pod traffic (missing `! -d 10.240.0.0/16`), so it no longer matches the IPsec selectors',
    );
    expect(explainPodToPodRewrite(parseNatRules('-A X -s 10.240.1.0/24 ! -d 10.240.1.0/24 -j MASQUERADE'), '10.240.1.0/24', '10.240.0.0/16')).toMatch(
      /excludes only 10.240.1.0\/24, not the whole pod range 10.240.0.0\/16/,
    );
  });
});

describe('masquerade verdict', () => {
  const c: MasqueradeCase = { node: minion1, pod: minion1.pods[0]!, podIp: '10.240.1.2', peer: { pod: minion2.pods[0]!, ip: '10.240.2.2' } };
  const rules = '-A KUBE-IPSEC-POSTROUTING -s 10.240.1.0/24 ! -d 10.240.0.0/16 -j MASQUERADE\n';

  it('passes egress seen from the node address and pod→pod seen from the pod address', () => {
    const r = masqueradeResult(t, [c], [{ upstream: ['192.168.10.21', '192.168.10.21'], peer: ['10.240.1.2'], natRules: rules }]);
    expect(r.ok).toBe(true);
    expect(r.lines).toEqual([
      'minion1-pod1 → upstream 192.168.10.254: arrived from 192.168.10.21 (masqueraded)',
      'minion1-pod1 → minion2-pod1 10.240.2.2: arrived from 10.240.1.2 (source kept)',
    ]);
  });

  it('blames the rule without the pod-range exclusion when pod→pod traffic vanishes', () => {
    const r = masqueradeResult(t, [c], [{ upstream: ['192.168.10.21'], peer: [], natRules: rules.replace(' ! -d 10.240.0.0/16', '') }]);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      'minion1: minion1-pod1 10.240.1.2 → minion2-pod1 10.240.2.2 never arrived: the nat rule `-A KUBE-IPSEC-POSTROUTING -s 10.240.1.0/24 -j MASQUERADE` also rewrites pod→pod traffic (missing `! -d 10.240.0.0/16`), so it no longer matches the IPsec selectors',
    ]);
  });

  it('names a missing egress rule when the upstream router sees the pod address', () => {
    const r = masqueradeResult(t, [c], [{ upstream: ['10.240.1.2'], peer: ['10.240.1.2'], natRules: '-P POSTROUTING ACCEPT\n' }]);
    expect(r.problems).toEqual([
      "minion1-pod1 10.240.1.2 → upstream 192.168.10.254: arrived from 10.240.1.2, not masqueraded to 192.168.10.21: minion1's nat table has no MASQUERADE rule for 10.240.1.0/24 (the node-network script's KUBE-IPSEC-POSTROUTING)",
    ]);
  });
});

describe('MTU', () => {
  it('finds the largest passing size with two probes when the promise holds, by bisection otherwise', async () => {
    const probe = (limit: number) => {
      const sizes: number[] = [];
      return { sizes, fn: async (n: number) => (sizes.push(n), n <= limit) };
    };
    const kept = probe(1372);
    expect(await largestPassing(kept.fn, 1372, 1472)).toBe(1372);
    expect(kept.sizes).toEqual([1372, 1373]);
    for (const limit of [-1, 0, 1000, 1371, 1373, 1472]) expect(await largestPassing(probe(limit).fn, 1372, 1472), String(limit)).toBe(limit);
  });

  it('fails a pod MTU larger than the tunnel carries, and one the plugin did not apply', () => {
    const base = { from: 'minion1', pod: 'minion1-pod1', dst: 'minion2-pod1', conflistMtu: 1400, linkMtu: 1400, podMax: 1372, tunnelMax: 1372 };
    expect(mtuResult(base)).toMatchObject({ ok: true, problems: [] });
    const tooBig = mtuResult({ ...base, conflistMtu: 1423, linkMtu: 1423 });
    expect(tooBig.ok).toBe(false);
    expect(tooBig.problems).toEqual([
      'pods are promised 1395-byte DF payloads (pod MTU 1423) but only 1372 bytes cross the tunnel minion1-pod1 → minion2-pod1: the pod MTU is larger than the tunnel carries (1372 + 28), so bigger packets are dropped',
    ]);
    expect(mtuResult({ ...base, linkMtu: 1500, podMax: 1372 }).problems[0]).toMatch(/eth0 has mtu 1500, but minion1's conflist says 1400/);
  });
});

describe('fail-closed verdict', () => {
  const measure = (over: Partial<FailClosedMeasure> = {}): FailClosedMeasure => ({
    victim: minion1,
    topology: t,
    flows: 18,
    answered: 0,
    sources: { probes: 14, answered: [] },
    capture: classifyCapture([], t.podCidr),
    blackholes: 'blackhole 10.240.0.0/16 \n',
    guardDrops: 0,
    book: new Map([
      ['10.240.1.2', 'minion1-pod1'],
      ['10.240.2.2', 'minion2-pod1'],
    ]),
    recovery: { baseline: 5, tunnelsBack: true, trafficBack: true, meshBack: true, notSingle: [], saSeconds: 0.31, trafficSeconds: 0.42 },
    ...over,
  });

  it('sends the victim pods and node to every remote pod, and every other node to them', () => {
    expect(victimFlows(t, podIps, minion1)).toHaveLength(3 * 4 + 3 * 2);
    expect(recoveryFlows(t, podIps, minion1).map((f) => f.label)).toEqual([
      'master → minion1-pod1',
      'minion1-pod1 → minion2-pod1',
      'minion2-pod1 → minion1-pod1',
      'minion1-pod1 → minion3-pod1',
      'minion3-pod1 → minion1-pod1',
    ]);
    expect(recoveryFlows(t, podIps, master).map((f) => f.label)).toEqual(['master → minion1-pod1', 'master → minion2-pod1', 'master → minion3-pod1']);
  });

  it('passes with no clear-text packet and reports the recovery seconds', () => {
    const r = failClosedResult(measure());
    expect(r.ok).toBe(true);
    expect(r.summary).toBe(
      'strongSwan stopped on minion1: 0 clear-text pod packets on the underlay while 18 flows and 14 probes from non-pod sources kept sending (0 answers; the guard dropped 0); traffic back (5 flows) 0.42 s after `ipsec start` (tunnels 0.31 s)',
    );
    expect(r.values).toMatchObject({ trafficSeconds: 0.42, clearPod: 0 });
  });

  it('blames the missing blackhole route for a leak', () => {
    const leak = classifyCapture(['IP 10.240.1.2 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64'], t.podCidr);
    const r = failClosedResult(measure({ capture: leak, blackholes: '' }));
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "1 clear-text pod packets on the underlay while strongSwan was stopped on minion1 (minion1-pod1 → minion2-pod1, e.g. `IP 10.240.1.2 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64`): minion1's main table has no blackhole route for 10.240.0.0/16 (the node-network script's `ip route replace blackhole`), so pod traffic took the default route in clear text, and its guard did not drop it",
    ]);
  });

  it('fails a missing blackhole route even when the guard kept the wire clean', () => {
    const r = failClosedResult(measure({ blackholes: '', guardDrops: 12 }));
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "with strongSwan stopped on minion1, minion1's main table has no blackhole route for 10.240.0.0/16 (the node-network script's `ip route replace blackhole`): remote pod traffic took the default route, and only the node network's guard kept it off the underlay (it dropped 12 packets)",
    ]);
  });

  it('fails when traffic flows without strongSwan, or does not come back', () => {
    expect(failClosedResult(measure({ answered: 3 })).problems).toEqual([
      '3 echo replies came back while strongSwan was stopped on minion1: pod traffic still flowed without it',
    ]);
    expect(failClosedResult(measure({ sources: { probes: 14, answered: ['upstream → minion1 192.168.10.21:32766 → minion2-pod1'] } })).problems).toEqual([
      '1 probes from non-pod sources were answered while strongSwan was stopped on minion1 (e.g. upstream → minion1 192.168.10.21:32766 → minion2-pod1): traffic to its pods still flowed without it',
    ]);
    expect(failClosedResult(measure({ recovery: { ...measure().recovery, tunnelsBack: false, trafficBack: false } })).problems).toEqual([
      'after `ipsec start` on minion1 its tunnels did not come back',
    ]);
    expect(failClosedResult(measure({ recovery: { ...measure().recovery, baseline: 0 } })).problems[0]).toMatch(/recovery cannot be measured/);
  });

  it('knows which blackhole routes cover the pod range', () => {
    expect(blackholeCovers('blackhole 10.240.0.0/16 \n', '10.240.0.0/16')).toBe(true);
    expect(blackholeCovers('blackhole 10.0.0.0/8\n', '10.240.0.0/16')).toBe(true);
    expect(blackholeCovers('blackhole 10.240.1.0/24\n', '10.240.0.0/16')).toBe(false);
    expect(blackholeCovers('', '10.240.0.0/16')).toBe(false);
  });
});

describe('report', () => {
  it('pads matrices and ends with the verdict', () => {
    expect(formatMatrix('x', ['a', 'bbb'], ['c1', 'c2'], (r, c) => `${r.length}${c}`)).toEqual(['x     c1   c2', 'a    1c1  1c2', 'bbb  3c1  3c2']);
    const r = report('lab lab1', [
      { name: 'tunnels', ok: true, summary: '6/6', problems: [] },
      { name: 'mtu', ok: false, summary: 'bad', problems: ['why'] },
    ]);
    expect(r.ok).toBe(false);
    expect(formatReport(r)).toBe('PASS  tunnels     6/6\nFAIL  mtu         bad\n   ✗  why\nlab lab1: 1 of 2 checks failed (mtu)\n');
    expect(report('lab lab1', []).ok).toBe(false);
  });
});

describe('guard counters', () => {
  // `nft -j list chain ip kube-ipsec guard`, trimmed, as nftables 1.0.6 prints it.
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { chain: { family: 'ip', table: 'kube-ipsec', name: 'guard', type: 'filter', hook: 'postrouting', prio: 110, policy: 'accept' } },
      {
        rule: {
          family: 'ip',
          table: 'kube-ipsec',
          chain: 'guard',
          handle: 6,
          expr: [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: { set: ['lo', 'ipsec-br01'] } } }, { accept: null }],
        },
      },
      {
        rule: {
          family: 'ip',
          table: 'kube-ipsec',
          chain: 'guard',
          handle: 8,
          comment: 'pod source in clear',
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '10.240.0.0', len: 16 } } } },
            { counter: { packets: 3, bytes: 252 } },
            { drop: null },
          ],
        },
      },
      {
        rule: {
          family: 'ip',
          table: 'kube-ipsec',
          chain: 'guard',
          handle: 9,
          comment: 'pod destination in clear',
          expr: [{ counter: { packets: 5, bytes: 420 } }, { drop: null }],
        },
      },
    ],
  });

  it('reads the drop rules by their comment and counts what was dropped in between', () => {
    const after = parseGuardCounts(json);
    expect(after).toEqual({ 'pod source in clear': 3, 'pod destination in clear': 5 });
    expect(guardDropped({ 'pod source in clear': 1, 'pod destination in clear': 5 }, after)).toBe(2);
    expect(guardDropped(undefined, after)).toBe(8);
    expect(guardDropped(after, undefined)).toBe(0);
  });
});
