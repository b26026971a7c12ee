// Real sshd as the target of `kube-ipsec provision`: one network namespace per node, holding
// the node's address on a bridge in a lab namespace, each with its own sshd, host key and
// scratch root; and a "host" namespace on the same bridge, where the provision CLI runs
// (the test process itself stays in the root namespace, which gets no address or link).
//
//   lab namespace:  bridge br0 ── veth ── node namespaces (192.168.10.10, .21, …, sshd :22)
//                              └─ veth ── host namespace (192.168.10.1, runs the CLI)
//
// Each sshd's SetEnv points provision/ at the systemctl/apt-get recorders and the node's
// own record directory; the CLI's --root puts each node's files in its scratch root.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../../src/ship/known-hosts.ts';
import { netnsLab, type NetnsLab } from './netns.ts';
import { recorderEnv, repoRoot } from './ship-node.ts';

const HOST_IP = '192.168.10.1';
/** A provisioning run of the lab's few nodes takes seconds; one still going after this hangs. */
const CLI_DEADLINE_MS = 100_000;

interface LabNode {
  name: string;
  ip: string;
  ns: string;
  /** Scratch root the node's provisioning installs into. */
  root: string;
  /** Recorder directory (systemctl.log, apt.log). */
  record: string;
  /** `SHA256:…` of the node's host key. */
  fingerprint: string;
  /** known_hosts line for the node. */
  knownHostsLine: string;
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SshdLab {
  dir: string;
  nodes: Map<string, LabNode>;
  /** Private key the nodes accept for root. */
  clientKey: string;
  /** known_hosts holding every node's real key. */
  knownHosts: string;
  /** `--root` for the CLI: every node's scratch root. */
  rootOption: string;
  netns: NetnsLab;
  hostNs: string;
  /**
   * Runs `kube-ipsec <args>` in the host namespace (bin/kube-ipsec, or its TypeScript through
   * tsx). A run still going after CLI_DEADLINE_MS is killed and resolves with what it printed,
   * so a hang fails its test with the output that shows where, not with a bare test timeout.
   */
  cli(args: string[], via?: CliVia): Promise<CliRun>;
  /** Starts `kube-ipsec <args>` in the host namespace; kill() ends it (the whole process group). */
  start(args: string[], via?: CliVia): { done: Promise<CliRun>; kill(): void };
  /** Runs argv in the host namespace. */
  inHost(argv: string[]): ReturnType<NetnsLab['exec']>;
  cleanup(): Promise<void>;
}

export async function sshdLab(tag: string, nodes: { name: string; ip: string }[]): Promise<SshdLab> {
  if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd is missing: apt-get install openssh-server (scripts/test-deps)');
  // sshd's privilege separation directory; normally made by the service at boot.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const netns = netnsLab(tag);
  const dir = mkdtempSync(join(tmpdir(), `kube-ipsec-${tag}-`));
  const children = new Set<ChildProcess>();
  const lab: SshdLab = {
    dir,
    nodes: new Map(),
    clientKey: join(dir, 'client_key'),
    knownHosts: join(dir, 'known_hosts'),
    rootOption: join(dir, 'roots', '{node}'),
    netns,
    hostNs: '',
    inHost: (argv) => netns.exec(lab.hostNs, argv),
    start: (args, via) => startCli(lab, children, args, via),
    async cli(args, via) {
      const run = startCli(lab, children, args, via);
      let timedOut = false;
      const deadline = setTimeout(() => {
        timedOut = true;
        run.kill();
      }, CLI_DEADLINE_MS);
      const r = await run.done.finally(() => clearTimeout(deadline));
      return timedOut ? { ...r, stderr: `${r.stderr}\n[sshd-lab] kube-ipsec ${args.join(' ')}: killed after ${CLI_DEADLINE_MS / 1000} s` } : r;
    },
    async cleanup() {
      for (const c of children) if (c.pid) killGroup(c.pid);
      // sshd's per-connection children and what they run live in the lab's namespaces too.
      for (const ns of netns.list()) {
        const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
        for (const pid of pids) killPid(Number(pid));
      }
      await netns.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    keygen(lab.clientKey);
    const labNs = await netns.add('lab');
    await netns.exec(labNs, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await netns.exec(labNs, ['ip', 'link', 'set', 'br0', 'up']);
    // Links are created from inside the namespaces (ip -n), never in the root namespace.
    const attach = async (ns: string, peer: string, ip: string) => {
      await netns.exec(ns, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', labNs]);
      await netns.exec(labNs, ['ip', 'link', 'set', peer, 'master', 'br0', 'up']);
      await netns.exec(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await netns.exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
      await netns.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    };
    lab.hostNs = await netns.add('host');
    await attach(lab.hostNs, 'v-host', HOST_IP);
    const started: Promise<void>[] = [];
    for (const [i, n] of nodes.entries()) {
      const ns = await netns.add(n.name.slice(0, 12));
      await attach(ns, `v-${i}`, n.ip);
      const node = startSshd(lab, ns, n.name, n.ip, started);
      lab.nodes.set(n.name, node);
    }
    writeFileSync(lab.knownHosts, [...lab.nodes.values()].map((n) => n.knownHostsLine).join(''));
    await Promise.all(started);
  } catch (err) {
    await lab.cleanup();
    throw err;
  }
  return lab;
}

/** A new ed25519 key pair at `file` (and `file`.pub). */
export function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

/** The known_hosts line of a host key pair for `host`, and its `SHA256:` fingerprint. */
export function hostKeyOf(keyFile: string, host: string): { fingerprint: string; knownHostsLine: string } {
  const [type, key] = readFileSync(`${keyFile}.pub`, 'utf8').split(' ') as [string, string];
  return { fingerprint: fingerprint(Buffer.from(key, 'base64')), knownHostsLine: `${host} ${type} ${key}\n` };
}

/** sshd_config of a test sshd: root logs in with `clientKey` only, nothing else. */
export function sshdConfig(o: { listen: string; hostKey: string; pidFile: string; clientKey: string; setEnv?: string[] }): string {
  return [
    `ListenAddress ${o.listen}`,
    `HostKey ${o.hostKey}`,
    `PidFile ${o.pidFile}`,
    `AuthorizedKeysFile ${o.clientKey}.pub`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The test's files live in a temp dir with ordinary permissions.
    'StrictModes no',
    ...(o.setEnv?.length ? [`SetEnv ${o.setEnv.join(' ')}`] : []),
    '',
  ].join('\n');
}

/** Resolves once sshd logged that it listens (its -E log), or throws with the log. */
export async function sshdListening(log: string, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(log) && readFileSync(log, 'utf8').includes('Server listening')) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`sshd of ${what} did not start: ${existsSync(log) ? readFileSync(log, 'utf8') : 'no log'}`);
}

function startSshd(lab: SshdLab, ns: string, name: string, ip: string, started: Promise<void>[]): LabNode {
  const d = join(lab.dir, 'sshd', name);
  mkdirSync(d, { recursive: true });
  const root = join(lab.dir, 'roots', name);
  const record = join(lab.dir, 'records', name);
  mkdirSync(root, { recursive: true });
  mkdirSync(record, { recursive: true });
  keygen(join(d, 'host_key'));
  const env = Object.entries(recorderEnv(record)).map(([k, v]) => `${k}=${v}`);
  writeFileSync(
    join(d, 'sshd_config'),
    sshdConfig({ listen: `${ip}:22`, hostKey: join(d, 'host_key'), pidFile: join(d, 'sshd.pid'), clientKey: lab.clientKey, setEnv: env }),
  );
  const log = join(d, 'sshd.log');
  lab.netns.spawn(ns, ['/usr/sbin/sshd', '-D', '-f', join(d, 'sshd_config'), '-E', log]);
  started.push(sshdListening(log, name));
  return { name, ip, ns, root, record, ...hostKeyOf(join(d, 'host_key'), ip) };
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** How the CLI is started: built (bin/kube-ipsec, what users run; rebuilt from src/ if stale), or its TypeScript through tsx. */
type CliVia = 'tsx' | 'built';

function cliArgv(via: CliVia = 'built'): string[] {
  return via === 'built'
    ? [process.execPath, join(repoRoot, 'bin', 'kube-ipsec')]
    : [join(repoRoot, 'node_modules', '.bin', 'tsx'), join(repoRoot, 'src', 'cli.ts')];
}

function startCli(lab: SshdLab, children: Set<ChildProcess>, args: string[], via?: CliVia): { done: Promise<CliRun>; kill(): void } {
  const child = spawn('ip', ['netns', 'exec', lab.hostNs, ...cliArgv(via), ...args], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SSH_AUTH_SOCK: '' },
  });
  children.add(child);
  if (child.pid) lab.netns.track(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { done, kill: () => child.pid && killGroup(child.pid) };
}
