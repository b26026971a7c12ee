// End to end on real VMs (npm run test:vm; CI runs it after npm test): `npm run lab -- up --vm`
// boots a master and two minions under qemu from the cached node image (built first if the
// cache has none) and provisions them with `kube-ipsec provision`; `check` must pass every
// check — the shared ones (tunnels, pings, capture with raw ESP, sources, masquerade, MTU,
// rekey across the lab's short lifetimes, fail-closed) and the VM ones (kernel ESP, units,
// re-provisioning one minion, rebooting one) — and `down` must leave no process, tap,
// namespace or overlay behind. Twice: as cluster.yaml comes by default, and with
// ipsec.nodeEncryption (node-to-node traffic through ESP too: the node-traffic check). The
// commands run as a user runs them; the state file tells the test what to look for afterwards.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { down } from '../../src/lab/down.ts';
import { CHECK_NAMES, type CheckReport } from '../../src/check/report.ts';
import type { LabStateData } from '../../src/lab/state.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-vm-e2e-'));
let stateDir = '';
let configFile = '';
let prefix = '';

/** Every lab this file brought up: afterAll brings each down, whichever test failed. */
const stateDirs: string[] = [];

afterAll(async () => {
  // Whatever happened above, nothing of any lab stays (down is idempotent).
  for (const d of stateDirs) await down(d).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}, 300_000);

const NODES = 'nodes:\n  - { name: master, role: master, ip: 192.168.10.10 }\n  - { name: minion1, ip: 192.168.10.21 }\n  - { name: minion2, ip: 192.168.10.22 }\n';

function lab(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const argv = [join(repoRoot, 'node_modules', '.bin', 'tsx'), join(repoRoot, 'src', 'cli.ts'), 'lab', ...args, '--config', configFile, '--state', stateDir];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

/** Processes anywhere on this machine whose command line names the lab's state dir. */
function processesOf(path: string): string[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .flatMap((e) => {
      try {
        const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return cmd.includes(path) ? [`${e}: ${cmd.slice(0, 120)}`] : [];
      } catch {
        return [];
      }
    });
}

describe.each([
  { name: 'default', tag: 'd', yaml: NODES, nodeEncryption: false },
  { name: 'ipsec.nodeEncryption', tag: 'n', yaml: `${NODES}ipsec:\n  nodeEncryption: true\n`, nodeEncryption: true },
])('the VM lab: master and two minions as qemu VMs ($name)', ({ tag, yaml, nodeEncryption }) => {
  it('comes up provisioned by kube-ipsec provision, passes every check, and goes down leaving nothing behind', async () => {
    assertPluginBuilt();
    const started = performance.now();
    stateDir = join(dir, `lab-${tag}`);
    stateDirs.push(stateDir);
    configFile = join(dir, `cluster-${tag}.yaml`);
    prefix = `kv${tag}${process.pid.toString(36).slice(-4)}`;
    writeFileSync(configFile, yaml);
    const up = await lab(['up', '--vm', '--prefix', prefix]);
    expect(up.code, 'lab up --vm').toBe(0);
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as LabStateData;
    expect(state.backend).toBe('vm');
    expect(state.espMode).toBe('kernel');
    expect(up.stdout).toMatch(/provision: provisioned: 3 of 3 nodes ok/);
    expect(up.stdout).toMatch(/provision:\s+minion1\s+kubelet\.service \(no \/usr\/local\/bin\/kubelet\)|kubelet\.service \(no \/usr\/local\/bin\/kubelet\)/);
    // The air-gapped image path, for real: an image built from busybox-static, verified by
    // provisioning and loaded into each minion's docker by kube-ipsec-images.service.
    for (const m of ['minion1', 'minion2']) expect(up.stdout).toMatch(new RegExp(`${m}: docker holds kube-ipsec\\.test/smoke:busybox sha256:[0-9a-f]{64}, loaded from its archive`));
    // The add-ons wait for an API server this lab cannot run: installed, verified, idle.
    expect(up.stdout).toMatch(/kube-ipsec-addons\.service \(needs kube-apiserver\.service\)/);

    const check = await lab(['check', '--json']);
    const report = JSON.parse(check.stdout) as CheckReport;
    const failed = report.results.filter((r) => !r.ok && !r.skipped).map((r) => `${r.name}: ${r.problems.join('; ')}`);
    expect(failed).toEqual([]);
    expect(report.results.map((r) => r.name).sort()).toEqual([...CHECK_NAMES].sort());
    expect(report.results.filter((r) => r.skipped).map((r) => r.name)).toEqual(nodeEncryption ? [] : ['node-traffic']);
    expect(check.code).toBe(0);
    // Node addresses, NodePorts and masqueradeAll services to remote pods: every probe answered, as ESP.
    expect(report.results.find((r) => r.name === 'sources')!.values).toMatchObject({ probes: 12, answered: 12, clearPod: 0 });
    expect(report.results.find((r) => r.name === 'rekey')!.values).toMatchObject({ lost: 0, clearPod: 0 });
    expect(report.results.find((r) => r.name === 'fail-closed')!.values).toMatchObject({ clearPod: 0, answered: 0, sourcesAnswered: 0 });
    if (nodeEncryption) {
      // Node to node (3×2) through ESP; from the upstream, the listeners and sshd of every node (3×2) in clear.
      expect(report.results.find((r) => r.name === 'node-traffic')!.values).toMatchObject({ inside: 6, insideAnswered: 6, outside: 6, outsideAnswered: 6, clearNodes: 0 });
    }
    const capture = report.results.find((r) => r.name === 'capture')!;
    expect(capture.values?.espUdp).toBe(0);
    expect(capture.values?.esp).toBeGreaterThan(0);
    const reboot = report.results.find((r) => r.name === 'reboot')!;
    expect(reboot.values?.clearPod).toBe(0);
    expect(reboot.values?.staleBefore).toBeGreaterThan(0);
    expect(reboot.values?.staleAfter).toBe(0);

    const status = await lab(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/minion1 .*active \(unit/);

    // What down must remove, from the state before it is gone.
    const qemuPids = state.processes.filter((p) => p.role === 'vm').map((p) => p.pid);
    expect(qemuPids).toHaveLength(3);
    const overlays = state.vm!.overlays;
    expect(overlays).toHaveLength(3);
    const gone = await lab(['down']);
    expect(gone.code).toBe(0);
    for (const pid of qemuPids) expect(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir), `qemu ${pid}`).toBe(false);
    expect(processesOf(stateDir)).toEqual([]);
    const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : [];
    expect(namespaces).toEqual([]);
    // Taps and bridges lived in the lab's namespaces only: none ever was in this one.
    expect(readdirSync('/sys/class/net').filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    for (const f of overlays) expect(existsSync(f), f).toBe(false);
    expect(existsSync(stateDir)).toBe(false);
    console.log(`VM lab e2e: up, check, status and down in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }, 15 * 60_000);
});
