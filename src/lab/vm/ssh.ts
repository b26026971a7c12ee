// The lab's way into its VMs: OpenSSH with the lab's own client key and each VM's host key
// known in advance (generated here, handed to the VM in its seed; never trust-on-first-use).
// Every ssh process runs inside the lab's wire namespace, so even a connection that does not
// go through the master stays there. One master connection per VM (ControlMaster, its PID
// recorded) carries every command: a new ssh handshake under software emulation costs seconds.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fingerprint } from '../../ship/known-hosts.ts';
import { shellQuote } from '../../shell.ts';
import { NETNS_DIR } from '../../check/target.ts';
import type { Runner } from '../../run.ts';
import type { SeedKeys, VmLayout, VmNode } from './layout.ts';

export interface LabKeys {
  dir: string;
  /** The lab's client key (root on every VM accepts it). */
  clientKey: string;
  knownHosts: string;
  /** Node → its host key, and its `SHA256:` fingerprint (nodes[].ssh.hostKey). */
  hosts: Map<string, { key: string; pub: string; fingerprint: string }>;
}

function sshDir(stateDir: string): string {
  return join(stateDir, 'ssh');
}

/** Generates the client key and one host key per VM (ssh-keygen), and the known_hosts of the management addresses. */
export async function generateKeys(runner: Runner, stateDir: string, layout: VmLayout): Promise<LabKeys> {
  const dir = sshDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keygen = (file: string, comment: string) =>
    runner.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { timeoutMs: 20_000 });
  const clientKey = join(dir, 'id_ed25519');
  if (!existsSync(clientKey)) await keygen(clientKey, 'kube-ipsec-lab');
  await Promise.all(layout.nodes.map((v) => (existsSync(hostKeyFile(dir, v.name)) ? undefined : keygen(hostKeyFile(dir, v.name), `kube-ipsec-lab-${v.name}`))));
  const hosts = new Map<string, { key: string; pub: string; fingerprint: string }>();
  for (const v of layout.nodes) {
    const pub = readFileSync(`${hostKeyFile(dir, v.name)}.pub`, 'utf8').trim();
    hosts.set(v.name, { key: readFileSync(hostKeyFile(dir, v.name), 'utf8'), pub, fingerprint: fingerprint(Buffer.from(pub.split(' ')[1]!, 'base64')) });
  }
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, layout.nodes.map((v) => `${v.mgmtIp} ${hosts.get(v.name)!.pub.split(' ').slice(0, 2).join(' ')}\n`).join(''), { mode: 0o600 });
  return { dir, clientKey, knownHosts, hosts };
}

function hostKeyFile(dir: string, node: string): string {
  return join(dir, `host-${node}`);
}

export function seedKeys(keys: LabKeys, node: string): SeedKeys {
  const h = keys.hosts.get(node)!;
  return { hostKey: h.key, hostKeyPub: h.pub, authorizedKey: readFileSync(`${keys.clientKey}.pub`, 'utf8') };
}

export interface SshTarget {
  wireNs: string;
  stateDir: string;
  vm: VmNode;
}

function controlPath(stateDir: string, node: string): string {
  return join(sshDir(stateDir), `${node}.ctl`);
}

/** ssh options: the lab's key and known_hosts only (-F none: no user config applies). */
function options(t: SshTarget, connectTimeout = 5): string[] {
  const dir = sshDir(t.stateDir);
  return [
    '-F',
    'none',
    '-i',
    join(dir, 'id_ed25519'),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    `ConnectTimeout=${connectTimeout}`,
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ControlPath=${controlPath(t.stateDir, t.vm.name)}`,
  ];
}

const inWire = (t: SshTarget, argv: string[]) => ['nsenter', `--net=${NETNS_DIR}/${t.wireNs}`, ...argv];

/** argv running `argv` as root on the VM (through its master connection when that is up). */
export function sshArgv(t: SshTarget, argv: readonly string[]): string[] {
  return inWire(t, ['ssh', ...options(t), '-o', 'ControlMaster=no', `root@${t.vm.mgmtIp}`, '--', argv.map(shellQuote).join(' ')]);
}

/** argv of the master connection (runs until the VM goes away or it is stopped). */
function masterArgv(t: SshTarget): string[] {
  return inWire(t, ['ssh', ...options(t), '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', '-N', `root@${t.vm.mgmtIp}`]);
}

/** Is the VM's master connection up? */
export async function masterUp(runner: Runner, t: SshTarget): Promise<boolean> {
  if (!existsSync(controlPath(t.stateDir, t.vm.name))) return false;
  const r = await runner.run(inWire(t, ['ssh', ...options(t), '-O', 'check', `root@${t.vm.mgmtIp}`]), { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0;
}

/**
 * Opens the VM's master connection: resolves with its PID once commands can use it, or
 * undefined if sshd did not accept it (the VM is not up yet: try again).
 */
export async function openMaster(runner: Runner, t: SshTarget, timeoutMs = 20_000): Promise<number | undefined> {
  const argv = masterArgv(t);
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    if (await masterUp(runner, t)) {
      child.stderr!.destroy();
      return child.pid;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (child.exitCode === null) child.kill('SIGKILL');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION/i.test(stderr)) {
    throw new Error(`${t.vm.name} presents another ssh host key than the one in its seed: ${stderr.trim()}`);
  }
  return undefined;
}
