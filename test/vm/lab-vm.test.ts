// End to end on real VMs (npm run test:vm; CI runs it after npm test): `npm run lab -- up --vm`
// boots a master and two minions under qemu from the cached node image (built first if the
// cache has none) and provisions them with `kube-ipsec provision`; `lab check` must pass every
// check — the shared ones (tunnels, pings, capture with raw ESP, sources, masquerade, MTU,
// rekey across the lab's short lifetimes, fail-closed) and the VM ones (kernel ESP, units,
// re-provisioning one minion, rebooting one) — with ipsec.nodeEncryption on, so node-to-node
// traffic goes through ESP too (the node-traffic check). The lab runs the network alone
// (--binaries none): Kubernetes on VMs, with the default cluster.yaml, is what `npm run
// test:vagrant` proves, and both in one CI run would not fit its time. `down` must leave no
// process, tap, namespace or overlay behind. The commands run as a user runs them; the state
// file tells the test what to look for afterwards.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES, type CheckReport } from '../../src/check/report.ts';
import { down } from '../../src/lab/down.ts';
import type { LabStateData } from '../../src/lab/state.ts';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-vm-e2e-'));
const stateDir = join(dir, 'lab');
const configFile = join(dir, 'cluster.yaml');
const prefix = `kvn${process.pid.toString(36).slice(-4)}`;

afterAll(async () => {
  // Whatever happened above, nothing of the lab stays (down is idempotent).
  await down(stateDir).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}, 300_000);

function lab(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const argv = [join(repoRoot, 'node_modules', '.bin', 'tsx'), join(repoRoot, 'src', 'cli.ts'), 'lab', '--config', configFile, '--state', stateDir, ...args];
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

const MINIONS = ['minion1', 'minion2'];

describe('the VM lab: master and two minions as qemu VMs, ipsec.nodeEncryption, the network alone', () => {
  let state: LabStateData;
  const started = performance.now();

  it(
    'comes up provisioned by kube-ipsec provision',
    async () => {
      assertPluginBuilt();
      // The network alone needs no more than 768 MB and one vCPU per VM (the bench's reference runs' sizes).
      writeFileSync(
        configFile,
        'nodes:\n  - { name: master, role: master, ip: 192.168.10.10 }\n  - { name: minion1, ip: 192.168.10.21 }\n  - { name: minion2, ip: 192.168.10.22 }\nipsec:\n  nodeEncryption: true\nvagrant: { memory: 768, cpus: 1 }\n',
      );
      const up = await lab(['up', '--vm', '--prefix', prefix, '--binaries', 'none']);
      expect(up.code, 'lab up --vm').toBe(0);
      state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as LabStateData;
      expect(state.backend).toBe('vm');
      expect(state.espMode).toBe('kernel');
      expect(up.stdout).toMatch(/provision: provisioned: 3 of 3 nodes ok/);
      expect(up.stdout).toMatch(/kubelet\.service \(no \/usr\/local\/bin\/kubelet\)/);
      // The air-gapped image path with an image built here from busybox-static.
      for (const m of MINIONS)
        expect(up.stdout).toMatch(new RegExp(`${m}: docker holds kube-ipsec\\.test/smoke:busybox sha256:[0-9a-f]{64}, loaded from its archive`));
      expect(up.stdout).toMatch(/kube-ipsec-addons\.service \(needs kube-apiserver\.service\)/);
    },
    25 * 60_000,
  );

  it(
    'passes every check of `lab check`',
    async () => {
      const check = await lab(['check', '--json']);
      const report = JSON.parse(check.stdout) as CheckReport;
      const failed = report.results.filter((r) => !r.ok && !r.skipped).map((r) => `${r.name}: ${r.problems.join('; ')}`);
      expect(failed).toEqual([]);
      expect(report.results.map((r) => r.name).sort()).toEqual([...CHECK_NAMES].sort());
      expect(report.results.filter((r) => r.skipped).map((r) => r.name)).toEqual([]);
      expect(check.code).toBe(0);
      const result = (name: string) => report.results.find((r) => r.name === name);
      // Node addresses, NodePorts and masqueradeAll services to remote pods: every probe answered, as ESP.
      expect(result('sources')!.values).toMatchObject({ probes: 12, answered: 12, clearPod: 0 });
      // Kernel ESP: the crafted clear-text packets carry no secpath, so the inbound chain counts every one.
      expect(result('inbound')!.values).toMatchObject({ probes: 8, arrived: 0, answered: 0, controls: 6, controlsAnswered: 6 });
      expect(result('rekey')!.values).toMatchObject({ lost: 0, clearPod: 0 });
      const capture = result('capture')!;
      expect(capture.values?.espUdp).toBe(0);
      expect(capture.values?.esp).toBeGreaterThan(0);
      expect(result('fail-closed')!.values).toMatchObject({ clearPod: 0, answered: 0, sourcesAnswered: 0 });
      // Node to node (3×2) through ESP; from the upstream, the listeners and sshd of every node (3×2) in clear.
      expect(result('node-traffic')!.values).toMatchObject({ inside: 6, insideAnswered: 6, outside: 6, outsideAnswered: 6, clearNodes: 0 });
      const reboot = result('reboot')!;
      expect(reboot.values?.clearPod).toBe(0);
      expect(reboot.values?.staleBefore).toBeGreaterThan(0);
      expect(reboot.values?.staleAfter).toBe(0);
    },
    25 * 60_000,
  );

  it(
    'reports status and goes down leaving nothing behind',
    async () => {
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
      for (const pid of qemuPids)
        expect(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir), `qemu ${pid}`).toBe(false);
      expect(processesOf(stateDir)).toEqual([]);
      const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : [];
      expect(namespaces).toEqual([]);
      // Taps and bridges lived in the lab's namespaces only: none ever was in this one.
      expect(readdirSync('/sys/class/net').filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      for (const f of overlays) expect(existsSync(f), f).toBe(false);
      expect(existsSync(stateDir)).toBe(false);
      console.log(`VM lab e2e: up, lab check, status and down in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    },
    10 * 60_000,
  );
});
