// Background programs and captures on a node reached by commands (ssh into a VM or a real
// node): started with `sh -c '… & echo $!'`, their output and PID file kept in the node's /run
// (tmpfs) and read back when stopped. Their PIDs live on the node: they end with it, and
// stopping them is a command too. Used by the VM lab and by `kube-ipsec check` on any cluster,
// which gives each run a directory of its own and a lifetime bound, so that what a killed
// check left running on a real node ends by itself and its PID files say what to stop.
import { shellQuote } from '../shell.ts';
import { waitFor, type Runner } from '../run.ts';
import { NETNS_DIR, type Background, type Capture } from './target.ts';

/** Where background programs keep their output on the node (tmpfs). */
export const REMOTE_DIR = '/run/kube-ipsec-check';

/** A place on a node: the node itself, or one of its pod namespaces. */
export interface RemoteWhere {
  node: string;
  pod?: string;
}

type OnNode = (node: string, argv: readonly string[]) => string[];

export interface RemoteOptions {
  /** Directory on the node for output, captures and PID files (default REMOTE_DIR). */
  dir?: string;
  /** The program is ended (timeout(1)) after this many seconds even if nobody stops it. */
  lifetimeS?: number;
  /** Bytes kept of each captured packet (tcpdump -s): the headers are what the checks read. */
  snaplen?: number;
  /** Only packets the interface sends, or receives (tcpdump -Q). */
  direction?: 'in' | 'out';
}

const safeName = (name: string) => name.replace(/[^A-Za-z0-9_.-]/g, '_');

interface RemoteProcess {
  pid: number;
  log: string;
  /** Kills it (SIGTERM, then waits up to 5 s), runs `after` on the node, and returns that script's output. */
  stop(after?: string): Promise<string>;
}

async function startRemote(runner: Runner, onNode: OnNode, w: RemoteWhere, argv: readonly string[], name: string, o: RemoteOptions): Promise<RemoteProcess> {
  const dir = o.dir ?? REMOTE_DIR;
  const base = `${dir}/${safeName(name)}`;
  const log = `${base}.log`;
  const netns = w.pod ? ['nsenter', `--net=${NETNS_DIR}/${w.pod}`] : [];
  const lifetime = o.lifetimeS ? ['timeout', String(o.lifetimeS)] : [];
  const command = [...netns, ...lifetime, ...argv].map(shellQuote).join(' ');
  const script = `mkdir -p '${dir}' && { ${command} </dev/null >'${log}' 2>&1 & } && echo $! >'${base}.pid' && cat '${base}.pid'`;
  const started = await runner.run(onNode(w.node, ['sh', '-c', script]), { timeoutMs: 30_000 });
  const pid = Number(started.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${argv[0]} in ${w.pod ?? w.node} did not start: ${started.stdout}${started.stderr}`);
  let stopped: Promise<string> | undefined;
  const stop = async (after = '') => {
    // Only while its PID file says so: after a reboot (/run is empty) the PID is someone else's.
    const kill = `kill -TERM ${pid} 2>/dev/null; for i in $(seq 50); do kill -0 ${pid} 2>/dev/null || break; sleep 0.1; done; kill -KILL ${pid} 2>/dev/null`;
    const script = `[ "$(cat '${base}.pid' 2>/dev/null)" = ${pid} ] && { ${kill}; }; rm -f '${base}.pid'; ${after}`;
    return (await runner.run(onNode(w.node, ['sh', '-c', script]), { allowFail: true, timeoutMs: 60_000 })).stdout;
  };
  return { pid, log, stop: (after) => (stopped ??= stop(after)) };
}

/** `argv` in the background on a node or in one of its pods; stop() returns what it printed. */
export async function remoteBackground(
  runner: Runner,
  onNode: OnNode,
  w: RemoteWhere,
  argv: readonly string[],
  name: string,
  o: RemoteOptions = {},
): Promise<Background> {
  const p = await startRemote(runner, onNode, w, argv, name, o);
  return { stop: () => p.stop(`cat '${p.log}' 2>/dev/null; rm -f '${p.log}'`) };
}

/** tcpdump on a node or in one of its pods, writing to the node's tmpfs; stop() reads the packets back. */
export async function remoteCapture(
  runner: Runner,
  onNode: OnNode,
  w: RemoteWhere,
  dev: string,
  name: string,
  filter: string[] = [],
  o: RemoteOptions = {},
): Promise<Capture> {
  const file = `${o.dir ?? REMOTE_DIR}/${safeName(name)}.pcap`;
  await runner.run(onNode(w.node, ['rm', '-f', file]), { allowFail: true, timeoutMs: 20_000 });
  const options = [...(o.snaplen ? ['-s', String(o.snaplen)] : []), ...(o.direction ? ['-Q', o.direction] : [])];
  const p = await startRemote(
    runner,
    onNode,
    w,
    ['tcpdump', '--immediate-mode', '-nn', '-U', '-Z', 'root', ...options, '-i', dev, '-w', file, ...filter],
    name,
    o,
  );
  const where = `${dev} in ${w.pod ?? w.node}${w.pod ? ` (${w.node})` : ''}`;
  const readLog = async () => (await runner.run(onNode(w.node, ['cat', p.log]), { allowFail: true, timeoutMs: 20_000 })).stdout;
  if (!(await waitFor(async () => /listening on/.test(await readLog()), 20_000, 100))) {
    const log = await readLog();
    await p.stop(`rm -f '${file}' '${p.log}'`);
    throw new Error(`tcpdump on ${where} did not start: ${log.trim()}`);
  }
  let stopped: Promise<string[]> | undefined;
  const stop = async (): Promise<string[]> => {
    await new Promise((r) => setTimeout(r, 200)); // the last replies in flight
    const out = await p.stop(`tcpdump -nn -t -r '${file}' 2>/dev/null; rm -f '${file}' '${p.log}'`);
    return out.split('\n').filter(Boolean);
  };
  return { file: `${w.node}:${file}`, stop: () => (stopped ??= stop()) };
}

/** Captures on several nodes at once, stopped together, their packets in one list (per-node captures of an underlay without a shared wire). */
export function mergedCapture(parts: Capture[]): Capture {
  let stopped: Promise<string[]> | undefined;
  return {
    file: parts.map((p) => p.file).join(' '),
    stop: () => (stopped ??= Promise.all(parts.map((p) => p.stop())).then((all) => all.flat())),
  };
}
