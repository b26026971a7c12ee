// The same end to end with per-pair pre-shared keys, and with six minions on a /16 node
// network: up → every check passes → down leaves nothing.
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../../src/check/check.ts';
import { inNode } from '../../src/lab/node-view.ts';
import { formatReport } from '../../src/check/report.ts';
import { bigClusterYaml, clusterYaml } from '../helpers/cluster.ts';
import { e2eLab, NOTHING_LEFT } from './lab-fixture.ts';

describe.each([
  { name: 'auth psk', tag: 'lpsk', yaml: () => clusterYaml({ 'ipsec.auth': 'psk' }), nodes: 4, auth: 'pre-shared key' },
  { name: 'six minions', tag: 'lsix', yaml: () => bigClusterYaml(6), nodes: 7, auth: 'public key' },
])('the lab with $name', ({ tag, yaml, nodes, auth }) => {
  const lab = e2eLab(tag);
  afterAll(() => lab.cleanup());

  it('comes up, passes every check and leaves nothing behind', async () => {
    lab.writeConfig(yaml());
    const running = await lab.up();
    expect(running.topology.nodes).toHaveLength(nodes);
    const minion1 = running.views.get('minion1')!;
    const status = await running.runner.run(inNode(minion1, ['ipsec', 'statusall']));
    expect(status.stdout).toContain(`local:  [minion1] uses ${auth} authentication`);

    const r = await check(running);
    expect(r.ok, formatReport(r)).toBe(true);
    const pods = (nodes - 1) * 2;
    const pings = r.results.find((x) => x.name === 'pings')!.values!;
    // every pod → every remote pod, the master → every pod, every minion → the other minions' pods
    expect(pings.pings).toBe(pods * (pods - 2) + pods + (nodes - 1) * (pods - 2));

    const before = lab.snapshot();
    const d = await lab.down();
    expect(d.warnings).toEqual([]);
    expect(lab.leftovers(before)).toEqual(NOTHING_LEFT);
  }, 240_000);
});
