// A deliberately broken render: the real pipeline renders the cluster, one file of one node's
// tree is edited, the lab comes up with it, and `check` fails — only the checks concerned,
// each with a message naming the cause.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../../src/check/check.ts';
import { withEspMode } from '../../src/lab/render.ts';
import { formatReport, type CheckName } from '../../src/check/report.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { defaultClusterYaml } from '../helpers/cluster.ts';
import { e2eLab } from './lab-fixture.ts';

interface Breakage {
  name: string;
  tag: string;
  /** Path on minion1 and the one edit made to it. */
  file: string;
  from: string | RegExp;
  to: string;
  /** A second edit, of another file of minion1. */
  also?: { file: string; from: string | RegExp; to: string };
  /** Checks to run (undefined: all of them). */
  only?: CheckName[];
  failing: CheckName[];
  cause: RegExp;
}

const breakages: Breakage[] = [
  {
    name: 'masquerade without the pod-range exclusion',
    tag: 'lmsq',
    file: PATHS.nodeNetworkScript,
    from: ' ! -d "$POD_CIDR"',
    to: '',
    failing: ['pings', 'masquerade'],
    cause: /nat rule `-A KUBE-IPSEC-POSTROUTING -s 10\.240\.1\.0\/24 -j MASQUERADE` also rewrites pod→pod traffic \(missing `! -d 10\.240\.0\.0\/16`\)/,
  },
  {
    name: 'mismatched selectors (one rightsubnet)',
    tag: 'lsel',
    file: PATHS.ipsecConf,
    from: 'rightsubnet=10.240.2.0/24',
    to: 'rightsubnet=10.240.9.0/24',
    failing: ['tunnels', 'pings', 'sources'],
    cause:
      /minion1's conn minion1-minion2 expects minion2's pods at 10\.240\.9\.0\/24 \(rightsubnet in minion1's \/etc\/ipsec\.conf\), but minion2's pod subnet is 10\.240\.2\.0\/24/,
  },
  {
    name: 'no fail-closed blackhole route',
    tag: 'lbh',
    file: PATHS.nodeNetworkScript,
    from: /^ip route replace blackhole .*$/m,
    to: '',
    only: ['tunnels', 'fail-closed'],
    failing: ['fail-closed'],
    cause:
      /with strongSwan stopped on minion1, minion1's main table has no blackhole route for 10\.240\.0\.0\/16 .*only the node network's guard kept it off the underlay \(it dropped [1-9]\d* packets\)/,
  },
  {
    name: 'neither the blackhole route nor the guard',
    tag: 'lgd',
    file: PATHS.nodeNetworkScript,
    from: /^ip route replace blackhole .*$/m,
    to: '',
    also: { file: PATHS.nodeNetworkRules, from: /^\t\tip [sd]addr 10\.240\.0\.0\/16 counter drop comment "pod (source|destination) in clear"$/gm, to: '' },
    only: ['tunnels', 'fail-closed'],
    failing: ['fail-closed'],
    cause:
      /clear-text pod packets on the underlay while strongSwan was stopped on minion1 .*minion1's main table has no blackhole route for 10\.240\.0\.0\/16 .*and its guard did not drop it/,
  },
  {
    name: 'no source NAT for non-pod sources',
    tag: 'lsn',
    file: PATHS.nodeNetworkRules,
    from: /^\t\t(ip saddr != .*|meta mark .*) counter snat to .*$/gm,
    to: '',
    only: ['tunnels', 'sources'],
    failing: ['sources'],
    cause:
      /^minion1: 2\/2 unanswered \(NodePort \(kube-proxy DNAT \+ masquerade mark\) → pod on another node\).*chain pod-source-nat\) must give the packet the bridge address before any MASQUERADE/,
  },
  {
    name: 'a pod MTU the tunnel cannot carry',
    tag: 'lmtu',
    file: PATHS.cniConflist,
    from: '"mtu": 1400',
    to: '"mtu": 1423',
    only: ['tunnels', 'mtu'],
    failing: ['mtu'],
    cause: /pods are promised 1395-byte DF payloads \(pod MTU 1423\) but only 1372 bytes cross the tunnel/,
  },
];

describe.each(breakages)('check on a lab with $name (minion1)', (b) => {
  const lab = e2eLab(b.tag);
  afterAll(() => lab.cleanup());

  it('fails exactly the concerned checks, naming the cause', async () => {
    const configFile = lab.writeConfig(defaultClusterYaml());
    const outDir = join(lab.dir, 'out');
    await runRender({ configFile, configText: withEspMode(defaultClusterYaml(), 'userspace'), outDir, stateDir: join(lab.dir, 'pki') });
    for (const e of [b, ...(b.also ? [b.also] : [])]) {
      const target = join(outDir, 'minion1', e.file);
      const before = readFileSync(target, 'utf8');
      const after = before.replace(e.from, e.to);
      expect(after, `the edit of ${e.file} matched nothing`).not.toBe(before);
      writeFileSync(target, after);
    }

    const running = await lab.up({ outDir, convergeTimeoutMs: 3000 });
    const r = await check(running, b.only ? { only: b.only } : {});
    const text = formatReport(r);
    expect(r.ok).toBe(false);
    expect(
      r.results.filter((x) => !x.ok && !x.skipped).map((x) => x.name),
      text,
    ).toEqual(b.failing);
    expect(
      r.results.flatMap((x) => x.problems).some((p) => b.cause.test(p)),
      text,
    ).toBe(true);
    await lab.down();
  }, 240_000);
});
