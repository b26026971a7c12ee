// Inbound as well as outbound (issue 18, item 7): nothing reaches a pod in clear from the
// underlay but what is addressed to the node itself. The real pipeline renders the default
// cluster, the namespace lab runs it (real strongSwan, userspace ESP, pods made by the
// plugin), and the inbound check attacks every minion's pod from the upstream router with
// crafted clear-text frames. As rendered, the check passes; with minion1's node table loaded
// without its inbound chain, or with the chain judging after kube-proxy's DNAT, it fails —
// for minion1 only, naming what went wrong.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../../src/check/check.ts';
import { formatReport } from '../../src/check/report.ts';
import { withEspMode } from '../../src/lab/render.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { defaultClusterYaml } from '../helpers/cluster.ts';
import { e2eLab } from '../e2e/lab-fixture.ts';

interface Case {
  name: string;
  tag: string;
  /** The edit of minion1's nftables table (none: as rendered). */
  edit?: { from: RegExp | string; to: string };
  ok: boolean;
  values: Record<string, number>;
  /** The one problem the check reports (when it fails). */
  problem?: RegExp;
}

const cases: Case[] = [
  {
    name: 'as rendered',
    tag: 'inok',
    ok: true,
    values: { probes: 12, arrived: 0, answered: 0, counted: 12, controls: 9, controlsAnswered: 9 },
  },
  {
    name: 'minion1 without the inbound chain',
    tag: 'inno',
    edit: { from: /\n\t# Inbound, the guard's mirror[\s\S]*?\tchain inbound \{\n[\s\S]*?\n\t\}\n/, to: '\n' },
    ok: false,
    // Its pod got all four; the two posing as minion2-pod1 were answered to minion2-pod1, through the tunnel.
    values: { probes: 12, arrived: 4, answered: 2, counted: 8, controls: 9, controlsAnswered: 9 },
    problem:
      /^minion1: 4\/4 clear-text packets from outside reached minion1-pod1 10\.240\.1\.\d+, 2 answered \(minion2-pod1 got answers to packets it never sent, through the tunnel\), e\.g\. upstream 192\.168\.10\.254: ICMP echo → minion1-pod1 .*: minion1's node network must drop what arrives from outside to or from the pod range unless it came out of a tunnel \(nft table kube-ipsec, chain inbound\); minion1 has no inbound chain/,
  },
  {
    name: "minion1's inbound chain judging after kube-proxy's DNAT (forward hook)",
    tag: 'infw',
    edit: { from: 'type filter hook prerouting priority raw;', to: 'type filter hook forward priority filter;' },
    ok: false,
    // Still keeps the crafted packets out, but also the NodePort's SYN, which kube-proxy has DNATed to the pod by then.
    values: { probes: 12, arrived: 0, answered: 0, counted: 12, controls: 9, controlsAnswered: 8 },
    problem: /^upstream → minion1 192\.168\.10\.21:\d+ \(NodePort → minion1-pod1\) unanswered: a NodePort on the node's address/,
  },
];

describe.each(cases)('inbound: the check on a lab with $name', (c) => {
  const lab = e2eLab(c.tag);
  afterAll(() => lab.cleanup());

  it(c.ok ? 'passes: every crafted packet counted, none in a pod, what must still answer does' : 'fails for minion1 only, naming the cause', async () => {
    const configFile = lab.writeConfig(defaultClusterYaml());
    const outDir = join(lab.dir, 'out');
    await runRender({ configFile, configText: withEspMode(defaultClusterYaml(), 'userspace'), outDir, stateDir: join(lab.dir, 'pki') });
    if (c.edit) {
      const file = join(outDir, 'minion1', PATHS.nodeNetworkRules);
      const before = readFileSync(file, 'utf8');
      const after = before.replace(c.edit.from, c.edit.to);
      expect(after, `the edit of ${PATHS.nodeNetworkRules} matched nothing`).not.toBe(before);
      writeFileSync(file, after);
    }

    const running = await lab.up({ outDir, convergeTimeoutMs: 3000 });
    const r = await check(running, { only: ['tunnels', 'inbound'] });
    const text = formatReport(r);
    const inbound = r.results.find((x) => x.name === 'inbound')!;
    expect(r.results.find((x) => x.name === 'tunnels')!.ok, text).toBe(true);
    expect(inbound.ok, text).toBe(c.ok);
    expect(inbound.values, text).toEqual(c.values);
    if (c.problem) {
      expect(inbound.problems, text).toHaveLength(1);
      expect(inbound.problems[0], text).toMatch(c.problem);
    } else {
      expect(inbound.problems, text).toEqual([]);
    }
    await lab.down();
  }, 240_000);
});
