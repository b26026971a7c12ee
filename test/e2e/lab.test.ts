// The lab end to end with the default cluster.yaml (master + 3 minions, certificates, the
// lab's short SA lifetimes): `up` → every check passes (rekeys included) → `status` from
// another process → `down` leaves nothing.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../../src/check/check.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { CHECK_NAMES, formatReport } from '../../src/check/report.ts';
import type { LabStatus } from '../../src/lab/status.ts';
import { defaultClusterYaml, repoRoot } from '../helpers/cluster.ts';
import { e2eLab, NOTHING_LEFT } from './lab-fixture.ts';

const lab = e2eLab('lab');
let running: Lab;
afterAll(() => lab.cleanup());

const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli.ts'), 'lab', ...args, '--config', lab.configFile, '--state', lab.stateDir], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });

describe('the lab with the default cluster (4 nodes, auth pubkey)', () => {
  it('comes up: a namespace per node, two pods per minion through the plugin, the mesh converged', async () => {
    lab.writeConfig(defaultClusterYaml());
    running = await lab.up();
    const s = running.state.data;
    expect(s.phase).toBe('up');
    expect(s.espMode).toBe('userspace');
    expect(s.convergedIn, 'the mesh did not converge within the wait').toBeGreaterThan(0);
    expect(running.topology.nodes.map((n) => n.name)).toEqual(['master', 'minion1', 'minion2', 'minion3']);
    for (const n of running.topology.nodes) {
      expect(n.pods).toHaveLength(n.role === 'minion' ? 2 : 0);
      for (const p of n.pods) expect(s.pods[p.ns]?.ip, p.name).toMatch(new RegExp(`^${n.podSubnet.replace(/0\/24$/, '').replace(/\./g, '\\.')}\\d+$`));
    }
  }, 120_000);

  it('passes every check', async () => {
    const r = await check(running);
    // The namespace lab runs every check; those that need real nodes say why they do not apply.
    expect(r.results.map((x) => x.name)).toEqual(CHECK_NAMES);
    expect(r.results.filter((x) => x.skipped).map((x) => x.name)).toEqual(['node-traffic', 'kernel-esp', 'units', 'reprovision', 'reboot']);
    expect(r.ok, formatReport(r)).toBe(true);
    expect(r.results.find((x) => x.name === 'pings')!.values).toEqual({ pings: 42, answered: 42 });
    expect(r.results.find((x) => x.name === 'mtu')!.values).toMatchObject({ podMtu: 1400, podMax: 1372 });
    expect(r.results.find((x) => x.name === 'capture')!.values!.esp).toBeGreaterThanOrEqual(84);
    // Node addresses, NodePorts and masqueradeAll services to remote pods: all answered, all ESP.
    expect(r.results.find((x) => x.name === 'sources')!.values).toMatchObject({ probes: 30, answered: 30, clearPod: 0 });
    // Crafted clear-text packets from the upstream to a pod on each minion (4 each): none arrived, every one counted; NodePort, node and bridge still answer.
    expect(r.results.find((x) => x.name === 'inbound')!.values).toEqual({ probes: 12, arrived: 0, answered: 0, counted: 12, controls: 9, controlsAnswered: 9 });
    // The lab's short lifetimes: every pair rekeyed under continuous traffic, nothing lost.
    expect(r.results.find((x) => x.name === 'rekey')!.values).toMatchObject({ lost: 0, clearPod: 0 });
    expect(r.results.find((x) => x.name === 'fail-closed')!.values).toMatchObject({ clearPod: 0, answered: 0, sourceProbes: 18, sourcesAnswered: 0 });
  }, 360_000);

  it('answers status and check from another process (the CLI)', () => {
    const status = cli('status', '--json');
    expect(status.status, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as LabStatus;
    expect(s.pairs.every((p) => p.up)).toBe(true);
    for (const n of s.nodes) {
      expect(n.strongswan, `${n.name} strongSwan`).toHaveLength(2);
      expect(n.allocations).toBe(n.pods.length);
      for (const p of n.pods) expect(p).toMatchObject({ ip: running.state.data.pods[p.ns]!.ip, mtu: 1400, stored: running.state.data.pods[p.ns]!.ip });
    }
    const tunnels = cli('check', '--only', 'tunnels');
    expect(tunnels.status, tunnels.stdout + tunnels.stderr).toBe(0);
    expect(tunnels.stdout).toMatch(/^PASS {2}tunnels {5}6\/6 node pairs/m);
  }, 120_000);

  it('down deletes the pods, stops what it started and leaves no namespace, link, process or mount; again: nothing to do', async () => {
    const before = lab.snapshot();
    const pids = before.pids;
    expect(pids.filter((p) => p.role === 'view')).toHaveLength(4);
    expect(pids.filter((p) => p.role === 'strongswan').length).toBeGreaterThanOrEqual(8);
    const r = await lab.down();
    expect(r.warnings).toEqual([]);
    expect(r.podsDeleted).toBe(6);
    expect(r.namespaces).toHaveLength(4 + 2 + 6);
    expect(lab.leftovers(before)).toEqual(NOTHING_LEFT);
    expect((await lab.down()).found).toBe(false);
  }, 60_000);
});
