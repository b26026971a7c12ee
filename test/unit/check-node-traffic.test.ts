// The node-traffic check's verdict (ipsec.nodeEncryption): which node → node connections were
// answered, what came in clear between node addresses, and the count of each side.
import { describe, expect, it } from 'vitest';
import { nodeProbes, nodeTrafficResult } from '../../src/check/checks/node-traffic.ts';
import type { TcpOutcome } from '../../src/check/probe.ts';
import { labTopology } from '../../src/lab/topology.ts';
import { plan } from '../helpers/cluster.ts';

const t = labTopology(plan({ ipsec: { nodeEncryption: true } }), 'ut');
const book = new Map(t.nodes.map((n) => [n.ip, n.name]));
const probes = nodeProbes(t, true);
const right = (i: number) => ({ text: probes[i]!.port === 22 ? 'SSH-2.0-OpenSSH_9.2p1' : probes[i]!.to.name, tries: 1 });
const ESP = 'IP 192.168.10.21 > 192.168.10.22: ESP(spi=0x1,seq=0x1), length 120';

describe('node-traffic verdict', () => {
  it('passes when every connection got its answer and only ESP went between nodes', () => {
    const r = nodeTrafficResult(
      t,
      probes,
      probes.map((_, i) => right(i)),
      [ESP],
      book,
    );
    const inside = probes.filter((p) => !p.outside).length;
    const outside = probes.length - inside;
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.values).toMatchObject({ inside, insideAnswered: inside, outside, outsideAnswered: outside, clearNodes: 0, esp: 1 });
  });

  it('names an unanswered connection, a wrong answer, clear text between nodes and a clear-text pod packet', () => {
    const answers: TcpOutcome[] = probes.map((_, i) => right(i));
    const lost = probes.findIndex((p) => !p.outside);
    const wrong = probes.findIndex((p) => p.outside && p.port !== 22);
    answers[lost] = { tries: 3, why: 'Connection timed out' };
    answers[wrong] = { tries: 3, why: 'answered "somebody else"' };
    const lines = [
      ESP,
      'IP 192.168.10.21.40000 > 192.168.10.22.8090: Flags [S], seq 1, win 64240, length 0',
      'IP 192.168.10.21 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64',
    ];
    const r = nodeTrafficResult(t, probes, answers, lines, book);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${probes[lost]!.from} \\S+ → ${probes[lost]!.to.name} \\S+:8090: 3 attempts unanswered \\(Connection timed out\\): node-to-node traffic must flow through the tunnel`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^upstream → ${probes[wrong]!.to.name} \\S+:8090: 3 attempts unanswered \\(answered "somebody else"\\): a client outside the cluster must still reach the node`,
        ),
      ),
      expect.stringMatching(/^1 clear-text packets between node addresses on the underlay \(e\.g\. 192\.168\.10\.21 → 192\.168\.10\.22 /),
      '1 clear-text pod packets on the underlay: minion1 192.168.10.21 → 10.240.2.2 (ICMP), e.g. `IP 192.168.10.21 > 10.240.2.2: ICMP echo request, id 1, seq 1, length 64`',
    ]);
    expect(r.values).toMatchObject({
      insideAnswered: probes.filter((p) => !p.outside).length - 1,
      outsideAnswered: probes.filter((p) => p.outside).length - 1,
      clearNodes: 1,
    });
  });
});
