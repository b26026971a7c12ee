// The sources and rekey checks' pure parts: which probes and flows they run, kube-proxy's rule
// layout they install, how long they wait for rekeys, and their verdicts.
import { describe, expect, it } from 'vitest';
import { classifyCapture } from '../../src/check/capture.ts';
import { serviceRules, serviceRulesRemoval } from '../../src/check/kube-proxy.ts';
import {
  plannedSeconds,
  rekeyFlows,
  rekeyResult,
  rekeyTooLong,
  SpiLog,
  streamVerdict,
  worstCaseSeconds,
  type FlowOutcome,
} from '../../src/check/checks/rekey.ts';
import { pingSummary } from '../../src/check/probe.ts';
import { serviceAddress, servicesOn, sourceProbes, sourcesResult } from '../../src/check/checks/sources.ts';
import type { IkeSa } from '../../src/check/vici.ts';
import { labTopology } from '../../src/lab/topology.ts';
import { SHORT_LIFETIMES } from '../../src/lab/render.ts';
import { plan } from '../helpers/cluster.ts';

const t = labTopology(plan(), 'ut');
const [master, minion1, minion2] = t.nodes;
const podIps = Object.fromEntries(t.nodes.flatMap((n) => n.pods.map((p, k) => [p.ns, { ip: n.podSubnet.replace(/0\/24$/, String(k + 2)) }])));

describe('sources probes', () => {
  const probes = sourceProbes(t, podIps);

  it('sends from every node address to the first pod of every other node with pods, by ping and TCP', () => {
    const fromNodes = probes.filter((p) => p.kind === 'node-address');
    expect(fromNodes).toHaveLength(3 + 3 * 2);
    expect(fromNodes.find((p) => p.via === 'master' && p.to === 'minion2')).toMatchObject({
      ns: master!.ns,
      bind: '192.168.10.10',
      dst: '10.240.2.2',
      token: 'minion2-pod1',
    });
    expect(probes.filter((p) => p.kind === 'node-tcp').every((p) => p.port === 8080 && p.bind === t.nodes.find((n) => n.name === p.via)!.ip)).toBe(true);
  });

  it("reaches a NodePort on every node with pods from the upstream, and a cluster IP from its pod, ending in every other node's pod", () => {
    const np = probes.filter((p) => p.kind === 'nodeport');
    expect(np).toHaveLength(6);
    expect(np.find((p) => p.via === 'minion1' && p.to === 'minion2')).toMatchObject({
      ns: t.upstream.ns,
      dst: '192.168.10.21',
      port: 32766,
      token: 'minion2-pod1',
    });
    const svc = probes.filter((p) => p.kind === 'service');
    expect(svc.find((p) => p.via === 'minion1' && p.to === 'minion3')).toMatchObject({
      ns: minion1!.pods[0]!.ns,
      dst: '10.30.0.252',
      port: 65080,
      token: 'minion3-pod1',
    });
  });

  it('without an upstream, a NodePort client is a third node', () => {
    const { upstream: _, ...noUpstream } = t;
    const np = sourceProbes(noUpstream, podIps).filter((p) => p.kind === 'nodeport');
    expect(np.find((p) => p.via === 'minion1' && p.to === 'minion2')!.ns).toBe(master!.ns);
  });

  it("takes service addresses from the top of the service range, NodePorts from the top of kube-proxy's", () => {
    expect(serviceAddress('10.30.0.0/24', 0)).toEqual({ clusterIp: '10.30.0.254', nodePort: 32767 });
    expect(servicesOn(t, podIps, minion2!).map((s) => [s.clusterIp.ip, s.nodePort, s.endpoint.ip])).toEqual([
      ['10.30.0.254', 32767, '10.240.1.2'],
      ['10.30.0.252', 32765, '10.240.3.2'],
    ]);
  });
});

describe("kube-proxy's layout", () => {
  const services = servicesOn(t, podIps, minion1!);

  it('prepends its jumps, marks NodePort and cluster-IP traffic for masquerade, DNATs to the endpoint', () => {
    const rules = serviceRules(services, { masqueradeAll: true, clusterCidr: t.podCidr });
    expect(rules).toContain('-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KICHK-SERVICES');
    expect(rules).toContain('-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KICHK-POSTROUTING');
    expect(rules).toContain('-A KICHK-MARK-MASQ -j MARK --or-mark 0x4000');
    expect(rules).toContain('-A KICHK-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully');
    expect(rules).toContain(
      '-A KICHK-SVC-0 -m comment --comment "kube-ipsec-check/minion2-pod1:http cluster IP" -m tcp -p tcp -d 10.30.0.253/32 --dport 65080 -j KICHK-MARK-MASQ',
    );
    expect(rules).toContain('-A KICHK-SEP-0 -m comment --comment "kube-ipsec-check/minion2-pod1:http" -m tcp -p tcp -j DNAT --to-destination 10.240.2.2:8080');
    // The NodePort rule is the last of KICHK-SERVICES, as kube-proxy keeps it.
    const services_ = rules.split('\n').filter((l) => l.startsWith('-A KICHK-SERVICES'));
    expect(services_.at(-1)).toMatch(/--dst-type LOCAL -j KICHK-NODEPORTS$/);
    // Without masqueradeAll, only traffic from outside the cluster CIDR is marked (the local detector).
    expect(serviceRules(services, { masqueradeAll: false, clusterCidr: t.podCidr })).toContain('--dport 65080 ! -s 10.240.0.0/16 -j KICHK-MARK-MASQ');
  });

  it('removes every jump however often it is there, then its chains, and never fails', () => {
    const script = serviceRulesRemoval(services);
    expect(script).toContain(
      'while iptables -w -t nat -D PREROUTING -m comment --comment "kubernetes service portals" -j KICHK-SERVICES 2>/dev/null; do :; done',
    );
    expect(script).toContain('iptables -w -t nat -X KICHK-SEP-1 2>/dev/null');
    expect(script.trim().split('\n').at(-1)).toBe('true');
  });
});

describe('sources verdict', () => {
  const probes = sourceProbes(t, podIps);
  const none = classifyCapture([], t.podCidr);
  const esp = classifyCapture(['IP 192.168.10.21 > 192.168.10.22: ESP(spi=0x1,seq=0x1), length 120'], t.podCidr);
  const outcome = (ok: boolean) => ({ ok, tries: ok ? 1 : 3 });

  it('passes when every probe was answered and the wire showed ESP and no clear text', () => {
    const r = sourcesResult(
      probes,
      probes.map(() => outcome(true)),
      esp,
      new Map(),
      new Map(),
    );
    expect(r).toMatchObject({ ok: true, summary: '30/30 probes from non-pod sources answered; underlay meanwhile: 0 clear-text pod packets, 1 ESP' });
    expect(r.lines).toEqual([
      'node → remote pod, ping from the node address: 9/9 answered',
      'node → remote pod, TCP bound to the node address: 9/9 answered',
      'NodePort (kube-proxy DNAT + masquerade mark) → pod on another node: 6/6 answered',
      'pod → cluster IP with masqueradeAll → pod on another node: 6/6 answered',
    ]);
  });

  it('groups unanswered probes by node and kind, naming the layer and the guard drops; reports clear text by flow', () => {
    const answered = probes.map((p) => outcome(!(p.via === 'minion1' && p.kind === 'nodeport')));
    const leak = classifyCapture(['IP 192.168.10.21 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64'], t.podCidr);
    const r = sourcesResult(
      probes,
      answered,
      { ...leak, esp: 1 },
      new Map([['minion1', 4]]),
      new Map([
        ['10.240.2.2', 'minion2-pod1'],
        ['192.168.10.21', 'minion1'],
      ]),
    );
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "minion1: 2/2 unanswered (NodePort (kube-proxy DNAT + masquerade mark) → pod on another node), e.g. upstream → minion1 192.168.10.21:32766 → minion2-pod1; upstream → minion1 192.168.10.21:32765 → minion3-pod1: after kube-proxy's DNAT and masquerade mark, minion1's node network (nft table kube-ipsec, chain pod-source-nat) must give the packet the bridge address before any MASQUERADE; minion1's guard dropped 4 packets meanwhile: they would have left outside ESP",
      '1 clear-text pod packets on the underlay: minion1 192.168.10.21 → minion2-pod1 10.240.2.2 (ICMP), e.g. `IP 192.168.10.21 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64`',
    ]);
  });

  it('points at a tunnel that is down instead of the node network', () => {
    const answered = probes.map((p) => outcome(!((p.via === 'minion1' && p.to === 'minion2') || (p.via === 'minion2' && p.to === 'minion1'))));
    const r = sourcesResult(probes, answered, esp, new Map(), new Map(), [['minion1', 'minion2']]);
    expect(r.problems).toHaveLength(8);
    expect(r.problems[0]).toBe(
      'minion1: 1/2 unanswered (node → remote pod, ping from the node address), e.g. minion1 192.168.10.21 → minion2-pod1: the tunnel minion1 ↔ minion2 is not up: see tunnels',
    );
  });

  it('says which TCP probes took a retry, and why an unanswered one was not answered', () => {
    const tcp = probes.map((p, i) => ({ p, i })).filter((x) => x.p.kind === 'node-tcp');
    const answered = probes.map((_, i) =>
      i === tcp[0]!.i
        ? { ok: true, tries: 2, why: 'Connection timed out' }
        : i === tcp[1]!.i
          ? { ok: false, tries: 3, why: 'Connection refused' }
          : outcome(true),
    );
    const r = sourcesResult(probes, answered, esp, new Map(), new Map());
    expect(r.ok).toBe(false);
    expect(r.lines?.[1]).toBe('node → remote pod, TCP bound to the node address: 8/9 answered (1 on a retry, first try: Connection timed out)');
    expect(r.problems).toEqual([expect.stringContaining(`e.g. ${tcp[1]!.p.label} (Connection refused): `)]);
  });

  it('fails without ESP on the wire, however many answers', () => {
    expect(
      sourcesResult(
        probes,
        probes.map(() => outcome(true)),
        none,
        new Map(),
        new Map(),
      ).problems,
    ).toEqual(['no ESP on the underlay during the probes: the capture saw no encrypted traffic at all']);
  });
});

describe('rekey', () => {
  const short = { child: 40, ike: 70, margin: 10 };

  it('waits at most two CHILD_SA rekey intervals or one IKE_SA interval, plus slack; hours of lifetime are not started unasked', () => {
    expect(worstCaseSeconds(short)).toBe(70);
    expect(rekeyTooLong(short)).toBeUndefined();
    expect(rekeyTooLong({ child: 3600, ike: 10800, margin: 540 })).toMatch(
      /^with ipsec.lifetime 3600 s and ikeLifetime 10800 s \(rekeyMargin 540 s\), 2 CHILD_SA rekeys and 1 IKE_SA rekey take up to 172 min: name the check/,
    );
    // The lab's short lifetimes are short enough.
    expect(
      rekeyTooLong({
        child: Number.parseInt(SHORT_LIFETIMES.lifetime, 10),
        ike: Number.parseInt(SHORT_LIFETIMES.ikeLifetime, 10),
        margin: Number.parseInt(SHORT_LIFETIMES.rekeyMargin, 10),
      }),
    ).toBeUndefined();
  });

  it("plans from when the SAs are due: the last pair's second CHILD_SA rekey or its IKE_SA rekey", () => {
    const sa = (ikeIn: number, childIn: number): IkeSa => ({
      conn: 'x',
      state: 'ESTABLISHED',
      initiator: true,
      spis: 'a/b',
      remoteHost: '192.168.10.22',
      rekeyIn: ikeIn,
      children: [{ name: 'x', state: 'INSTALLED', spiIn: 'c1', rekeyIn: childIn, localTs: [], remoteTs: [] }],
    });
    expect(plannedSeconds(short, [[sa(30, 5)], [sa(20, 12)]])).toBe(12 + 30 + 10);
    expect(plannedSeconds(short, [[sa(55, 5)]])).toBe(55 + 10);
    expect(plannedSeconds(short, [[sa(200, 200)]])).toBe(worstCaseSeconds(short));
  });

  it("runs one flow per node pair with a pod, from the pod (or the node without pods) to the other's pod", () => {
    const flows = rekeyFlows(t);
    expect(flows.map((f) => `${f.pair}: ${f.from} → ${f.to} :${f.port}`)).toEqual([
      'master ↔ minion1: master → minion1-pod1 :8180',
      'master ↔ minion2: master → minion2-pod1 :8181',
      'master ↔ minion3: master → minion3-pod1 :8182',
      'minion1 ↔ minion2: minion1-pod1 → minion2-pod1 :8183',
      'minion1 ↔ minion3: minion1-pod1 → minion3-pod1 :8184',
      'minion2 ↔ minion3: minion2-pod1 → minion3-pod1 :8185',
    ]);
  });

  it('counts rekeys from new SPIs seen at both ends', () => {
    const log = new SpiLog();
    const sas = (ike: string, child: string, peer: string): IkeSa[] => [
      {
        conn: 'c',
        state: 'ESTABLISHED',
        initiator: true,
        spis: ike,
        remoteHost: peer,
        children: [{ name: 'c', state: 'INSTALLED', spiIn: child, localTs: [], remoteTs: [] }],
      },
    ];
    for (const [ike, child] of [
      ['i1', 'a'],
      ['i1', 'b'],
      ['i2', 'b'],
      ['i2', 'c'],
    ]) {
      log.record(t, minion1!, sas(ike!, `${child}1`, minion2!.ip));
      log.record(t, minion2!, sas(ike!, `${child}2`, minion1!.ip));
    }
    expect(log.rekeys('minion1', 'minion2')).toEqual({ child: 2, ike: 1 });
    expect(log.rekeys('minion2', 'minion1')).toEqual({ child: 2, ike: 1 });
    expect(log.rekeys('master', 'minion1')).toEqual({ child: 0, ike: 0 });
  });

  it('reads ping summaries and judges TCP streams line by line', () => {
    expect(pingSummary('--- 10.240.2.2 ping statistics ---\n700 packets transmitted, 699 received, 0.142857% packet loss, time 70000ms\n')).toEqual({
      sent: 700,
      received: 699,
    });
    expect(streamVerdict('0\n1\n2\n', 3)).toEqual({ ok: true, lines: 3 });
    expect(streamVerdict('0\n1\n', 3)).toEqual({ ok: false, lines: 2, why: '2 of 3 lines arrived' });
    expect(streamVerdict('0\n2\n', 3)).toEqual({ ok: false, lines: 2, why: "line 1 was '2'" });
  });

  it('fails on a lost ping, a broken stream, a pair that did not rekey, clear text, or duplicates afterwards', () => {
    const flows = rekeyFlows(t);
    const log = new SpiLog();
    const outcomes: FlowOutcome[] = flows.map((flow) => ({ flow, ping: { sent: 700, received: 700 }, stream: { ok: true, lines: 700 } }));
    const healthyLog = { rekeys: () => ({ child: 2, ike: 1 }) } as unknown as SpiLog;
    const m = {
      seconds: 70,
      flows: outcomes,
      log: healthyLog,
      capture: classifyCapture([], t.podCidr),
      book: new Map<string, string>(),
      notSingle: [],
      topology: { ...t, lifetimes: short },
    };
    const ok = rekeyResult(m);
    expect(ok.ok).toBe(true);
    expect(ok.summary).toBe(
      "6 flows for 70 s across every pair's rekeys: 0 pings lost, 0 TCP streams broken, 0 clear-text pod packets, one SA pair per peer afterwards",
    );
    expect(ok.lines![3]).toBe(
      'minion1 ↔ minion2: 2 CHILD_SA rekeys, 1 IKE_SA rekeys; minion1-pod1 → minion2-pod1: 700/700 pings, TCP stream unbroken (700 lines)',
    );

    const bad = rekeyResult({
      ...m,
      log,
      flows: outcomes.map((o, i) =>
        i === 3
          ? {
              ...o,
              ping: { sent: 700, received: 697 },
              stream: { ok: false, lines: 350, why: '350 of 700 lines arrived' },
              clientError: 'Connection reset by peer',
            }
          : o,
      ),
      notSingle: ['minion1 ↔ minion2: …'],
    });
    expect(bad.ok).toBe(false);
    expect(bad.problems).toContain('minion1 ↔ minion2: 3 of 700 pings minion1-pod1 → minion2-pod1 lost across the rekeys');
    expect(bad.problems).toContain('minion1 ↔ minion2: the TCP stream minion1-pod1 → minion2-pod1 broke: Connection reset by peer');
    expect(bad.problems).toContain(
      'master ↔ minion1: 0 CHILD_SA and 0 IKE_SA rekeys in 70 s, 2 and 1 expected from its lifetimes (40 s / 70 s, margin 10 s): strongSwan did not rekey when due',
    );
    expect(bad.problems).toContain('after the rekeys: minion1 ↔ minion2: …');
  });
});
