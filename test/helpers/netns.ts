// Network namespaces for tests that need a real kernel: every namespace a test creates is
// named with its own prefix, every process it starts is recorded, and `cleanup()` removes
// exactly those (by prefix and PID, never by a broad name), even when the test failed, and
// again from a process 'exit' hook if a worker dies before its afterAll ran.
//
//   const lab = netnsLab('cnip');                 // prefix like "cnip3fa1-"
//   afterAll(() => lab.cleanup());
//   const node = await lab.add('node');           // "cnip3fa1-node"
//   await lab.exec(node, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  env?: Record<string, string>;
  /** Resolve instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
}

/** Runs argv (not through a shell) and collects its output. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const r = { code, signal, stdout, stderr };
      if (code !== 0 && !opts.allowFail) reject(new Error(`${argv.join(' ')} exited ${code ?? signal}: ${stderr.trim()}`));
      else resolve(r);
    });
    child.stdin.on('error', () => {}); // the child may exit before reading all input
    child.stdin.end(opts.input ?? '');
  });
}

export interface NetnsLab {
  /** e.g. "cnip3fa1-": every namespace of this lab starts with it. */
  readonly prefix: string;
  /** Creates namespace prefix+name and returns its full name. */
  add(name: string): Promise<string>;
  /** Filesystem path of a namespace (what CNI_NETNS carries). */
  path(fullName: string): string;
  /** Runs argv inside the namespace (`ip netns exec`). */
  exec(fullName: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running process inside the namespace; killed by cleanup(). */
  spawn(fullName: string, argv: readonly string[], env?: Record<string, string>): ChildProcess;
  /** Records a PID started elsewhere so cleanup() kills it too. */
  track(pid: number): void;
  remove(fullName: string): Promise<void>;
  /** Namespaces of this lab that currently exist. */
  list(): string[];
  /** Kills recorded processes, deletes every namespace with the prefix. Idempotent. */
  cleanup(): Promise<void>;
}

const live = new Set<NetnsLab>();
let exitHook = false;

function listNetns(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

export function netnsLab(tag: string): NetnsLab {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(tag)) throw new Error(`netnsLab tag '${tag}' must be 1-8 lowercase letters/digits`);
  const prefix = `${tag}${randomBytes(2).toString('hex')}-`;
  const pids = new Set<number>();

  const killAll = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    pids.clear();
  };
  const removeAllSync = () => {
    for (const ns of listNetns()) if (ns.startsWith(prefix)) spawnSync('ip', ['netns', 'del', ns]);
  };

  const lab: NetnsLab = {
    prefix,
    async add(name) {
      const full = prefix + name;
      await run(['ip', 'netns', 'add', full]);
      return full;
    },
    path: (full) => `/run/netns/${full}`,
    exec: (full, argv, opts) => run(['ip', 'netns', 'exec', full, ...argv], opts),
    spawn(full, argv, env) {
      const child = spawn('ip', ['netns', 'exec', full, ...argv], { env: env ?? process.env, stdio: 'ignore' });
      if (child.pid) pids.add(child.pid);
      child.on('exit', () => child.pid && pids.delete(child.pid));
      return child;
    },
    track: (pid) => void pids.add(pid),
    async remove(full) {
      if (!full.startsWith(prefix)) throw new Error(`${full} is not in lab ${prefix}`);
      await run(['ip', 'netns', 'del', full], { allowFail: true });
    },
    list: () => listNetns().filter((ns) => ns.startsWith(prefix)),
    async cleanup() {
      killAll();
      removeAllSync();
      live.delete(lab);
    },
  };
  live.add(lab);
  if (!exitHook) {
    exitHook = true;
    // Last resort for a worker that exits without running afterAll (the hook is synchronous).
    process.on('exit', () => {
      for (const l of live) {
        void l.cleanup();
      }
    });
  }
  return lab;
}
