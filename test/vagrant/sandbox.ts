// A private libvirt for tests and benchmarks that run Vagrant for real: libvirtd and virtlogd
// inside a network namespace of their own and a mount namespace whose libvirt directories
// are directories of the sandbox, with Vagrant's home and the project's .vagrant there too.
// Nothing appears in the root network namespace (libvirt's bridges, iptables rules, dnsmasq
// and the VMs' taps are all in the sandbox's), and nothing is written outside the sandbox
// directory: /etc/libvirt, /var/lib/libvirt (the storage pool), /var/log/libvirt,
// /var/cache/libvirt and /run are the sandbox's inside its mount namespace.
//
// The holder process is `tini -s` (a child subreaper): the daemons are started under it, so
// every process the sandbox ever has — libvirtd, virtlogd, each domain's qemu, each network's
// dnsmasq, all of which daemonize — stays its descendant, is reaped by it, and can be listed
// and stopped by PID. Commands "in the sandbox" (vagrant, virsh, ssh, tcpdump) join the
// holder's namespaces with nsenter.
//
//   const sb = await LibvirtSandbox.start('kvg');      // prefix like "kvg3fa1"
//   await sb.run(['virsh', 'list', '--all']);
//   await sb.stop();                                    // daemons by PID, namespace, directory
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processRunner, waitFor, type Runner, type RunOptions, type RunResult } from '../../src/run.ts';
import { shellQuote } from '../../src/shell.ts';
import { cleanLines, type StampedLine } from './phases.ts';

/** Host directories the sandbox replaces with its own inside its mount namespace (libvirt's state). */
export const PRIVATE_DIRS = {
  etc: '/etc/libvirt',
  lib: '/var/lib/libvirt',
  log: '/var/log/libvirt',
  cache: '/var/cache/libvirt',
} as const;

/** The sandbox's libvirtd: no polkit (the socket is reachable only inside the sandbox). */
const LIBVIRTD_CONF = `# kube-ipsec test sandbox
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
`;

/**
 * The sandbox's qemu driver: no cgroups (libvirt would create directories in the host's
 * cgroup tree) and no security driver (there is no AppArmor/SELinux inside the namespace).
 */
const QEMU_CONF = `# kube-ipsec test sandbox
security_driver = "none"
cgroup_controllers = [ ]
`;

/** Sandboxes not stopped yet: stopped at once if the process exits without stopping them. */
const live = new Set<LibvirtSandbox>();
let exitHook = false;

export interface SandboxProcess {
  pid: number;
  ppid: number;
  comm: string;
}

export class LibvirtSandbox {
  private constructor(
    /** Begins every name the sandbox creates (namespace, directory). */
    readonly prefix: string,
    /** Everything the sandbox writes is below this directory. */
    readonly dir: string,
    /** Its network namespace. */
    readonly ns: string,
    /** tini -s: the mount namespace's holder and every daemon's ancestor. */
    readonly holder: number,
  ) {}

  /** Starts virtlogd and libvirtd in a fresh sandbox; resolves once libvirtd answers. */
  static async start(tag: string, parent = '/var/tmp'): Promise<LibvirtSandbox> {
    if (!/^[a-z][a-z0-9]{0,5}$/.test(tag)) throw new Error(`sandbox tag '${tag}' must be 1-6 lowercase letters/digits`);
    const prefix = `${tag}${randomBytes(2).toString('hex')}`;
    const dir = mkdtempSync(join(parent, `kube-ipsec-${prefix}-`));
    const ns = `${prefix}-vg`;
    const d = (...p: string[]) => join(dir, ...p);
    for (const sub of ['etc', 'lib/images', 'log', 'cache', 'run/libvirt', 'run/netns', 'home', 'tmp', 'vagrant.d', 'dotfile'])
      mkdirSync(d(sub), { recursive: true });
    writeFileSync(d('etc/libvirtd.conf'), LIBVIRTD_CONF);
    writeFileSync(d('etc/qemu.conf'), QEMU_CONF, { mode: 0o600 });
    // The pool directory as Debian ships it: qemu (libvirt-qemu) must traverse it.
    for (const sub of ['lib', 'lib/images', 'cache']) chmodSync(d(sub), 0o711);

    await processRunner.run(['ip', 'netns', 'add', ns]);
    await processRunner.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const mounts = [
      // /run/netns stays visible (ip netns identify), then the sandbox's /run replaces the host's.
      `mount --rbind /run/netns ${shellQuote(d('run/netns'))}`,
      `mount --rbind ${shellQuote(d('run'))} /run`,
      ...Object.entries(PRIVATE_DIRS).map(([sub, target]) => `mount --bind ${shellQuote(d(sub))} ${target}`),
    ];
    const script = [...mounts, 'virtlogd -d', 'libvirtd -d', 'exec sleep infinity'].join(' && ');
    const child = spawn('ip', ['netns', 'exec', ns, 'tini', '-s', '--', 'sh', '-c', script], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b));
    child.unref();
    const sandbox = new LibvirtSandbox(prefix, dir, ns, child.pid!);
    writeFileSync(d('holder.pid'), `${child.pid}\n`);
    live.add(sandbox);
    if (!exitHook) {
      exitHook = true;
      // Last resort for a test process that exits without its afterAll (the hook is synchronous).
      process.on('exit', () => {
        for (const sb of live) sb.stopNow();
      });
    }
    const up = await waitFor(
      async () => existsSync(d('run/libvirt/libvirt-sock')) && (await sandbox.run(['virsh', 'version'], { allowFail: true })).code === 0,
      30_000,
      200,
    );
    child.stderr!.destroy();
    if (!up) {
      await sandbox.stop();
      throw new Error(
        `libvirtd did not start in the sandbox ${prefix}${child.exitCode !== null ? ` (holder exited ${child.exitCode})` : ''}: ${stderr.trim()}`,
      );
    }
    return sandbox;
  }

  /** Environment of every command in the sandbox: Vagrant's and the shell's homes are its own. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      HOME: join(this.dir, 'home'),
      VAGRANT_HOME: join(this.dir, 'vagrant.d'),
      VAGRANT_DOTFILE_PATH: join(this.dir, 'dotfile'),
      TMPDIR: join(this.dir, 'tmp'),
      LIBVIRT_DEFAULT_URI: 'qemu:///system',
      ...extra,
    };
  }

  /** argv running `argv` inside the sandbox (its network and mount namespaces), in `cwd`, with env(). */
  argv(argv: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string[] {
    const env = Object.entries(this.env(opts.env)).map(([k, v]) => `${k}=${v}`);
    return ['nsenter', `--target=${this.holder}`, '--net', '--mount', `--wd=${opts.cwd ?? this.dir}`, 'env', ...env, ...argv];
  }

  run(argv: readonly string[], opts: RunOptions & { cwd?: string; vars?: Record<string, string> } = {}): Promise<RunResult> {
    const { cwd, vars, ...rest } = opts;
    return processRunner.run(this.argv(argv, { ...(cwd !== undefined && { cwd }), ...(vars && { env: vars }) }), rest);
  }

  /** A Runner whose commands run inside the sandbox (for code that takes one). */
  get runner(): Runner {
    return { run: (argv, opts) => this.run(argv, opts) };
  }

  /**
   * Runs argv inside the sandbox, handing each output line (stdout and stderr, cleaned of
   * colours and progress redraws) to `onLine` with the seconds since the start.
   */
  stream(
    argv: readonly string[],
    opts: { cwd?: string; vars?: Record<string, string>; timeoutMs?: number; onLine?: (l: StampedLine) => void } = {},
  ): Promise<{ code: number | null; lines: StampedLine[]; seconds: number }> {
    const full = this.argv(argv, { ...(opts.cwd !== undefined && { cwd: opts.cwd }), ...(opts.vars && { env: opts.vars }) });
    const started = performance.now();
    const lines: StampedLine[] = [];
    return new Promise((resolve, reject) => {
      const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
      const feed = (stream: NodeJS.ReadableStream) => {
        let rest = '';
        stream.on('data', (d: Buffer) => {
          const text = rest + d.toString();
          const cut = text.lastIndexOf('\n');
          rest = cut < 0 ? text : text.slice(cut + 1);
          if (cut < 0) return;
          const t = (performance.now() - started) / 1000;
          for (const line of cleanLines(text.slice(0, cut))) {
            const l = { t, line };
            lines.push(l);
            opts.onLine?.(l);
          }
        });
        stream.on('end', () => {
          for (const line of cleanLines(rest)) lines.push({ t: (performance.now() - started) / 1000, line });
        });
      };
      feed(child.stdout);
      feed(child.stderr);
      child.on('error', reject);
      child.on('close', (code) => {
        if (timer) clearTimeout(timer);
        resolve({ code, lines, seconds: (performance.now() - started) / 1000 });
      });
    });
  }

  /** Starts a long-running program inside the sandbox, its output to `outFile`; stop it by its PID. */
  spawnTo(argv: readonly string[], outFile: string): number {
    const out = openSync(outFile, 'a');
    const child = spawn(this.argv(argv)[0]!, this.argv(argv).slice(1), { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    return child.pid!;
  }

  async virsh(...args: string[]): Promise<string> {
    return (await this.run(['virsh', '-q', ...args])).stdout;
  }

  /** Every process of the sandbox: the holder's descendants (the daemons, qemu, dnsmasq…). */
  processes(): SandboxProcess[] {
    const all = readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .map((e) => readStat(Number(e)))
      .filter((p): p is SandboxProcess => p !== undefined);
    const ours = new Set([this.holder]);
    // Parents before children is not guaranteed by PID order: iterate to a fixed point.
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of all) if (!ours.has(p.pid) && ours.has(p.ppid)) ours.add(p.pid), (grew = true);
    }
    return all.filter((p) => p.pid !== this.holder && ours.has(p.pid));
  }

  /**
   * Stops every process of the sandbox by PID (qemu and dnsmasq first, then libvirtd and
   * virtlogd, then the holder), deletes the namespace and, unless `keep`, the directory.
   * Returns what it had to stop besides the daemons and the holder (empty after a clean run).
   */
  async stop(keep = false): Promise<SandboxProcess[]> {
    live.delete(this);
    const daemons = new Set(['libvirtd', 'virtlogd', 'sleep']);
    const extra = this.processes().filter((p) => !daemons.has(p.comm));
    await terminate(extra.map((p) => p.pid));
    await terminate(
      this.processes()
        .filter((p) => p.comm !== 'sleep')
        .map((p) => p.pid),
    );
    await terminate([this.holder]);
    await processRunner.run(['ip', 'netns', 'del', this.ns], { allowFail: true });
    // The mount namespace goes with its last process; only then are the bind sources free.
    await waitFor(async () => !mountedBelow(this.dir), 10_000, 100);
    if (!keep) {
      if (mountedBelow(this.dir)) throw new Error(`sandbox ${this.prefix}: ${this.dir} is still mounted somewhere; left in place`);
      rmSync(this.dir, { recursive: true, force: true });
    }
    return extra;
  }

  /** stop() for a process that is exiting: SIGKILL to every process of the sandbox by PID; namespace and directory go. */
  stopNow(): void {
    live.delete(this);
    for (const pid of [...this.processes().map((p) => p.pid), this.holder]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync('ip', ['netns', 'del', this.ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function readStat(pid: number): SandboxProcess | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces or parentheses: split at the last ')'.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { pid, comm: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readStat(pid) !== undefined && !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** SIGTERM, up to 10 s, then SIGKILL: only the PIDs given. */
async function terminate(pids: number[]): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // exited meanwhile
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  if (await waitFor(async () => pids.every((p) => !alive(p)), 10_000, 100)) return;
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
  await waitFor(async () => pids.every((p) => !alive(p)), 5_000, 100);
}

/** Is anything mounted at or below `dir`, in any mount namespace this process can see? */
export function mountedBelow(dir: string): boolean {
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    // Field 4 is the root of the mount within its file system: a bind of dir/… shows it.
    if (info.split('\n').some((l) => l.split(' ')[3]?.startsWith(dir) || l.split(' ')[4]?.startsWith(dir))) return true;
  }
  return false;
}
