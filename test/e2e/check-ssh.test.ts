// `kube-ipsec check` end to end over real ssh, against the namespace lab: each node of a lab
// (master + 2 minions, userspace ESP) also runs a real sshd inside its own view (its files,
// its /run, its network namespace), and the CLI runs in the lab's upstream namespace, so it
// reaches the nodes only as a remote machine would — over the node network, by OpenSSH, with
// the host keys pinned in cluster.yaml. It must pass every check that applies there, capture
// on each node's underlay interface, make its test pods with the node's plugin and delete
// them through it, leave every IPAM store byte for byte as found, and leave nothing running
// or mounted; an unknown or changed host key is refused before anything is done; an interrupt
// puts everything back. (The same command against real VMs with systemd and kernel ESP,
// destructive checks included: test/vm/lab-vm.test.ts.)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { viewOf } from '../../src/lab/lab.ts';
import { runDir, writtenPath } from '../../src/lab/node-view.ts';
import { readState } from '../../src/lab/state.ts';
import { PATHS } from '../../src/plan/paths.ts';
import type { CheckReport } from '../../src/check/report.ts';
import type { Cleanup, NodeConnection } from '../../src/check/cluster.ts';
import { repoRoot } from '../helpers/cluster.ts';
import { hostKeyOf, keygen, sshdConfig, sshdListening } from '../helpers/sshd-lab.ts';
import { e2eLab, NOTHING_LEFT } from './lab-fixture.ts';

const lab = e2eLab('chk');
const NODES = [
  { name: 'master', role: 'master', ip: '192.168.10.10' },
  { name: 'minion1', role: 'minion', ip: '192.168.10.21' },
  { name: 'minion2', role: 'minion', ip: '192.168.10.22' },
];
const clientKey = join(lab.dir, 'client');
const sshds: ChildProcess[] = [];

afterAll(async () => {
  for (const s of sshds) s.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  await lab.cleanup();
});

type CheckJson = CheckReport & { cluster: { nodes: NodeConnection[]; cleanup: Cleanup } };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `kube-ipsec check` (the built command) in the lab's upstream namespace, as a user on another machine would run it. */
function checkCli(args: string[], onStdout?: (text: string, child: ChildProcess) => void): Promise<Run> {
  const argv = ['nsenter', `--net=/run/netns/${lab.prefix}-upstream`, process.execPath, join(repoRoot, 'bin', 'kube-ipsec'), 'check', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function clusterYaml(ssh: (n: (typeof NODES)[number]) => string): string {
  return `ipsec: { espMode: userspace }\nnodes:\n${NODES.map((n) => `  - { name: ${n.name}, role: ${n.role}, ip: ${n.ip}${ssh(n)} }`).join('\n')}\n`;
}

const hostKeyFile = (node: string) => join(lab.dir, `host-${node}`);
const storeFile = (node: string) =>
  writtenPath(viewOf(lab.stateDir, readState(lab.stateDir)!.topology.nodes.find((n) => n.name === node)!), `${PATHS.cniDataDir}/kube-ipsec.json`);
const stores = () => Object.fromEntries(['minion1', 'minion2'].map((n) => [n, readFileSync(storeFile(n), 'utf8')]));
/** Processes on this machine whose command line names this run's connections (the OpenSSH masters). */
const processesOf = (prefix: string) =>
  readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(`kube-ipsec-check-${prefix}`);
      } catch {
        return false;
      }
    });

/** What the check must have left: no test pod namespace, no run directory on any node, no connection. */
function assertNothingLeft(prefix: string): void {
  expect(readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  for (const n of readState(lab.stateDir)!.topology.nodes)
    expect(existsSync(join(runDir(viewOf(lab.stateDir, n)), 'kube-ipsec-check', prefix)), n.name).toBe(false);
  expect(processesOf(prefix)).toEqual([]);
}

describe('kube-ipsec check over ssh, against the namespace lab', () => {
  it('brings up the lab with an sshd inside every node', async () => {
    keygen(clientKey);
    for (const n of NODES) keygen(hostKeyFile(n.name));
    lab.writeConfig(clusterYaml((n) => `, ssh: { privateKey: ${clientKey}, hostKey: "${hostKeyOf(hostKeyFile(n.name), n.ip).fingerprint}" }`));
    const running = await lab.up();
    for (const n of running.topology.nodes) {
      const view = running.views.get(n.name)!;
      mkdirSync(join(runDir(view), 'sshd'), { recursive: true }); // sshd's privilege separation directory, in the node's /run
      const config = join(lab.dir, `sshd-${n.name}.conf`);
      const log = join(lab.dir, `sshd-${n.name}.log`);
      writeFileSync(config, sshdConfig({ listen: `${n.ip}:22`, hostKey: hostKeyFile(n.name), pidFile: '/run/sshd-test.pid', clientKey }));
      // nsenter without a PID namespace execs sshd itself: this child is the sshd to kill.
      sshds.push(spawn('nsenter', [`--target=${view.holder}`, '--net', '--mount', '/usr/sbin/sshd', '-D', '-f', config, '-E', log], { stdio: 'ignore' }));
      await sshdListening(log, n.name);
    }
  }, 120_000);

  it('passes every check that applies, captures on each underlay interface, and leaves the IPAM stores byte for byte as found', async () => {
    const before = stores();
    const r = await checkCli(['--config', lab.configFile, '--json']);
    const report = JSON.parse(r.stdout) as CheckJson;
    expect(r.code, r.stderr).toBe(0);
    expect(report.ok).toBe(true);
    // Destructive checks were not named: they do not run at all.
    expect(report.results.map((x) => x.name)).toEqual([
      'tunnels',
      'pings',
      'capture',
      'sources',
      'inbound',
      'node-traffic',
      'masquerade',
      'mtu',
      'kernel-esp',
      'units',
      'rekey',
    ]);
    // rekey: cluster.yaml's lifetimes of hours are not waited for unless the check is named.
    expect(report.results.filter((x) => x.skipped).map((x) => x.name)).toEqual(['node-traffic', 'masquerade', 'kernel-esp', 'units', 'rekey']);
    // The sshd lab's nodes are namespaces without systemd, and the reason names them as seen over ssh.
    expect(report.results.find((x) => x.name === 'units')!.skipped).toBe('master, minion1, minion2 run no systemd (no /run/systemd/system there)');
    // No upstream on a real cluster: the NodePort probes come from a third node.
    expect(report.results.find((x) => x.name === 'sources')!.values).toMatchObject({ probes: 12, answered: 12, clearPod: 0 });
    // No upstream: the master's root crafts the clear-text packets to the minions' pods.
    expect(report.results.find((x) => x.name === 'inbound')!.values).toEqual({
      probes: 8,
      arrived: 0,
      answered: 0,
      counted: 8,
      controls: 6,
      controlsAnswered: 6,
    });
    expect(report.results.find((x) => x.name === 'pings')!.values).toEqual({ pings: 16, answered: 16 });
    expect(report.results.find((x) => x.name === 'capture')!.values).toMatchObject({ clearPod: 0, otherIp: 0 });
    expect(report.results.find((x) => x.name === 'capture')!.values!.esp).toBeGreaterThanOrEqual(32);
    const state = readState(lab.stateDir)!;
    expect(report.cluster.nodes.map((n) => [n.name, n.ssh, n.hostKey, n.underlay])).toEqual(
      state.topology.nodes.map((n) => [n.name, `root@${n.ip}:22`, 'pinned in cluster.yaml', n.dev]),
    );
    expect(report.cluster.cleanup).toMatchObject({ pods: 4, podsDeleted: 4, problems: [] });
    expect(report.cluster.cleanup.stores.every((s) => s.asFound)).toBe(true);
    expect(stores()).toEqual(before);
    const prefix = /\b(kic[0-9a-z]{4})-minion1-pod1\b/.exec(r.stderr)![1]!;
    assertNothingLeft(prefix);
  }, 180_000);

  it('refuses a changed or unknown host key before doing anything, and records a new one only when asked', async () => {
    const wrong = hostKeyOf(hostKeyFile('master'), '').fingerprint;
    const changed = join(lab.dir, 'changed.yaml');
    writeFileSync(changed, readFileSync(lab.configFile, 'utf8').replace(/(name: minion2,[^\n]*hostKey: ")[^"]+"/, `$1${wrong}"`));
    const refused = await checkCli(['--config', changed]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^minion2: host key of 192\.168\.10\.22 refused: changed \(SHA256:[^)]+\); cluster\.yaml pins SHA256:/m);
    expect(refused.stdout).not.toMatch(/test pods/);

    const unpinned = join(lab.dir, 'unpinned.yaml');
    writeFileSync(
      unpinned,
      clusterYaml(() => `, ssh: { privateKey: ${clientKey} }`),
    );
    const knownHosts = join(lab.dir, 'known_hosts');
    const unknown = await checkCli(['--config', unpinned, '--known-hosts', knownHosts]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/host key of 192\.168\.10\.\d+ refused: unknown/);
    const accepted = await checkCli(['--config', unpinned, '--known-hosts', knownHosts, '--accept-new-host-keys', '--only', 'tunnels']);
    expect(accepted.code, accepted.stdout + accepted.stderr).toBe(0);
    expect(accepted.stdout).toMatch(/host key new, recorded in /);
    expect(readFileSync(knownHosts, 'utf8').trim().split('\n').sort()).toEqual(
      NODES.map((n) => hostKeyOf(hostKeyFile(n.name), n.ip).knownHostsLine.trim()).sort(),
    );
    const again = await checkCli(['--config', unpinned, '--known-hosts', knownHosts, '--only', 'tunnels']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`host key ${knownHosts.replace(/[.]/g, '\\.')}:\\d`));
  }, 180_000);

  it('refuses a victim that is not a node, before making any pod', async () => {
    const r = await checkCli(['--config', lab.configFile, '--only', 'fail-closed', '--victim', 'minion9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^--victim minion9 is not a node of cluster kube-ipsec \(nodes: master, minion1, minion2\)$/m);
    expect(r.stdout).not.toMatch(/test pods/);
  }, 60_000);

  it('puts everything back when interrupted halfway (SIGINT)', async () => {
    const before = stores();
    let sent = false;
    const r = await checkCli(['--config', lab.configFile], (out, child) => {
      if (!sent && /^PASS {2}pings/m.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: stopping the checks and putting the cluster back/);
    expect(r.stderr).toMatch(/^cleanup: 4\/4 test pods deleted through the plugin; IPAM stores: minion1 as found.*; minion2 as found/m);
    expect(stores()).toEqual(before);
    assertNothingLeft(/\b(kic[0-9a-z]{4})-minion1-pod1\b/.exec(r.stdout)![1]!);
  }, 180_000);

  it('leaves the lab for its own down, which then leaves nothing', async () => {
    for (const s of sshds) s.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const snap = lab.snapshot();
    const d = await lab.down();
    expect(d.warnings).toEqual([]);
    expect(lab.leftovers(snap)).toEqual(NOTHING_LEFT);
  }, 120_000);
});
