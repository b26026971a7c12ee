// OpenSSH to the nodes of a provisioned cluster. One master connection per node
// (ControlMaster) carries every command as a multiplexed session: a check runs hundreds of
// short commands (pings, swanctl, tcpdump), and a new handshake costs more than most of them
// (seconds on an emulated VM). The host key is decided before OpenSSH ever connects, by the
// product's own policy (src/ship/known-hosts.ts, exactly as `kube-ipsec provision` decides it);
// OpenSSH then gets a known_hosts file of this run holding that one key under the node's name,
// with StrictHostKeyChecking=yes, so it accepts that key and no other — also when it connects
// again after the node rebooted.
import { spawn, type ChildProcess } from 'node:child_process';
import { keyType } from '../ship/known-hosts.ts';
import { shellQuote } from '../shell.ts';
import type { RunOptions, RunResult, Runner } from '../run.ts';

export interface OpenSshNode {
  /** The node's name: also the name its host key is recorded under (HostKeyAlias). */
  name: string;
  host: string;
  port: number;
  user: string;
  /** Private keys to offer (none: the ssh-agent's). */
  identityFiles: string[];
  /** This run's known_hosts: the one key the policy accepted for the node. */
  knownHosts: string;
  /** Host key algorithms OpenSSH may accept (those of that key's type). */
  hostKeyAlgorithms: string[];
  controlPath: string;
}

/** The known_hosts line pinning `blob` for the node `alias` (OpenSSH's format). */
export function pinnedKnownHostsLine(alias: string, blob: Buffer): string {
  return `${alias} ${keyType(blob)} ${blob.toString('base64')}\n`;
}

/** Signature algorithms of a key type: an RSA key signs with SHA-2 (OpenSSH no longer accepts SHA-1). */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [type];
}

/** Options of every ssh command to the node: no user or system ssh_config applies (-F none). */
function sshOptions(n: OpenSshNode): string[] {
  return [
    '-F',
    'none',
    '-p',
    String(n.port),
    '-l',
    n.user,
    ...n.identityFiles.flatMap((f) => ['-i', f]),
    ...(n.identityFiles.length ? ['-o', 'IdentitiesOnly=yes'] : []),
    '-o',
    `UserKnownHostsFile=${n.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `HostKeyAlias=${n.name}`,
    '-o',
    `HostKeyAlgorithms=${n.hostKeyAlgorithms.join(',')}`,
    '-o',
    'UpdateHostKeys=no',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=10',
    // A node that stops answering (a reboot, a cut link) is noticed within 15 s.
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ControlPath=${n.controlPath}`,
  ];
}

/** The command line the node's shell runs for `argv`, as root (sudo -n for other users). */
export function remoteCommand(user: string, argv: readonly string[]): string {
  const command = argv.map(shellQuote).join(' ');
  return user === 'root' ? command : `sudo -n -- ${command}`;
}

/**
 * The end of every ssh command line: `--`, then the destination, then the remote command.
 * After `--` OpenSSH reads no option, so a host can never become one (`-oProxyCommand=…`
 * runs a command locally), whatever validated it before.
 */
function destination(n: OpenSshNode, command: string[] = []): string[] {
  return ['--', n.host, ...command];
}

/** argv running `argv` as root on the node, as a session of its master connection (or a connection of its own while there is none). */
export function sshArgv(n: OpenSshNode, argv: readonly string[]): string[] {
  return ['ssh', ...sshOptions(n), '-o', 'ControlMaster=no', ...destination(n, [remoteCommand(n.user, argv)])];
}

/** Is the node's master connection up? */
export async function masterUp(runner: Runner, n: OpenSshNode): Promise<boolean> {
  const r = await runner.run(['ssh', ...sshOptions(n), '-O', 'check', ...destination(n)], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0;
}

export interface Master {
  pid: number;
  /** Closes the connection (waits for it, up to 5 s) — idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the node's master connection; resolves once commands can use it, or with the reason
 * it could not (sshd not up yet, refused key…). Its one session reads this process's pipe:
 * if this process dies, however, the pipe closes, that session ends, and so does the master
 * (ControlPersist=no) — nothing is left connected to the node. It runs in a process group of
 * its own, so a Ctrl-C meant for the check does not cut the connection its cleanup needs.
 */
export async function openMaster(runner: Runner, n: OpenSshNode, timeoutMs: number): Promise<Master | { problem: string }> {
  const argv = ['ssh', ...sshOptions(n), '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', ...destination(n, ['exec cat >/dev/null'])];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.on('error', () => {});
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('error', (err) => (stderr += err.message));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    if (await masterUp(runner, n)) return masterHandle(child, exited);
    await new Promise((r) => setTimeout(r, 200));
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
  return { problem: stderr.trim() || `no connection within ${Math.round(timeoutMs / 1000)} s` };
}

function masterHandle(child: ChildProcess, exited: Promise<void>): Master {
  // Neither the pipe nor the process keeps this process alive: the check ends when it is done.
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  let closing: Promise<void> | undefined;
  const close = async () => {
    child.ref(); // this process waits for the connection to end
    child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5000)))]);
    clearTimeout(timer);
    if (!gone && child.exitCode === null) child.kill('SIGTERM');
  };
  return { pid: child.pid!, close: () => (closing ??= close()) };
}

/**
 * sshd serves at most MaxSessions (10 by default) sessions per connection, and a master's
 * own session is one of them: at most `limit` commands run on one node at a time, the others
 * wait their turn (a refused session would look like a failed command).
 */
export function perNodeSessions(runner: Runner, limit = 8): Runner {
  const queues = new Map<string, { running: number; waiting: (() => void)[] }>();
  const acquire = async (key: string) => {
    const q = queues.get(key) ?? { running: 0, waiting: [] };
    queues.set(key, q);
    if (q.running >= limit) await new Promise<void>((resolve) => q.waiting.push(resolve));
    q.running++;
    return () => {
      q.running--;
      q.waiting.shift()?.();
    };
  };
  return {
    async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
      const key = argv[0] === 'ssh' ? argv.find((a) => a.startsWith('ControlPath=')) : undefined;
      if (!key) return runner.run(argv, opts);
      const release = await acquire(key);
      try {
        return await runner.run(argv, opts);
      } finally {
        release();
      }
    },
  };
}
