// The checks' copy of kube-proxy's rule layout, loaded by the real iptables-restore into a
// network namespace of the test's own: its jumps land first in their chains even after the
// node network's own jumps (as kube-proxy's do, starting later), and the removal script takes
// away exactly what was installed — twice in a row, and when nothing is installed.
import { afterAll, describe, expect, it } from 'vitest';
import { serviceRules, serviceRulesRemoval } from '../../src/check/kube-proxy.ts';
import { servicesOn } from '../../src/check/checks/sources.ts';
import { labTopology } from '../../src/lab/topology.ts';
import { plan } from '../helpers/cluster.ts';
import { netnsLab } from '../helpers/netns.ts';

const lab = netnsLab('kprules');
afterAll(() => lab.cleanup());

const t = labTopology(plan(), 'ut');
const podIps = Object.fromEntries(t.nodes.flatMap((n) => n.pods.map((p, k) => [p.ns, { ip: n.podSubnet.replace(/0\/24$/, String(k + 2)) }])));
const services = servicesOn(t, podIps, t.nodes[1]!);

describe("kube-proxy's layout in a real kernel", () => {
  it('installs first in PREROUTING, POSTROUTING, OUTPUT and FORWARD, and is removed without a trace', async () => {
    const ns = await lab.add('node');
    const save = async () =>
      (await Promise.all(['nat', 'filter'].map(async (table) => (await lab.exec(ns, ['iptables', '-w', '-t', table, '-S'])).stdout))).join('');
    // The node network's own chains come first, as kube-ipsec-network.service starts before kube-proxy.
    await lab.exec(ns, ['iptables', '-w', '-t', 'nat', '-N', 'KUBE-IPSEC-POSTROUTING']);
    await lab.exec(ns, ['iptables', '-w', '-t', 'nat', '-I', 'POSTROUTING', '1', '-j', 'KUBE-IPSEC-POSTROUTING']);
    const before = await save();

    await lab.exec(ns, ['iptables-restore', '-w', '--noflush'], { input: serviceRules(services, { masqueradeAll: true, clusterCidr: t.podCidr }) });
    const nat = (await lab.exec(ns, ['iptables', '-w', '-t', 'nat', '-S'])).stdout.split('\n');
    expect(nat.filter((l) => l.startsWith('-A POSTROUTING'))).toEqual([
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KICHK-POSTROUTING',
      '-A POSTROUTING -j KUBE-IPSEC-POSTROUTING',
    ]);
    expect(nat.find((l) => l.startsWith('-A PREROUTING'))).toBe('-A PREROUTING -m comment --comment "kubernetes service portals" -j KICHK-SERVICES');
    expect(nat).toContain('-A KICHK-SEP-0 -p tcp -m comment --comment "kube-ipsec-check/minion2-pod1:http" -m tcp -j DNAT --to-destination 10.240.2.2:8080');
    const filter = (await lab.exec(ns, ['iptables', '-w', '-t', 'filter', '-S', 'FORWARD'])).stdout;
    expect(filter).toContain('-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KICHK-FORWARD');

    for (let i = 0; i < 2; i++) {
      const r = await lab.exec(ns, ['sh', '-s'], { input: serviceRulesRemoval(services) });
      expect(r.code).toBe(0);
      expect(await save()).toBe(before);
    }
  });
});
