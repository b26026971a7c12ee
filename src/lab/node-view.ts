// A node's own view of the file system inside its network namespace, so the daemons and
// tools the lab runs read exactly the node's rendered files at the paths a VM has them.
//
// The node's tree is written under <node dir>/tree/<absolute path>. openView() starts a
// small holder process in the node's network namespace and in a private mount namespace
// (`ip netns exec` makes one) where each top-level directory of the tree is an overlay —
// the node's files over the host's, writes going to <node dir>/upper — and /run is an
// empty directory of the node's own (pid files, control sockets). Commands "in the node"
// join the holder's namespaces with nsenter, so the view is built once and shared by all
// of them. The host's file system is never modified.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RenderedFile } from '../render/files.ts';
import { shellQuote } from '../shell.ts';

export interface NodeView {
  /** Network namespace of the node. */
  ns: string;
  /** Lab-owned directory of this node. */
  dir: string;
  /** The process holding the node's mount namespace (set by openView). */
  holder?: number;
}

/** Top-level directories that get an overlay even when the tree has nothing there. */
const ALWAYS_OVERLAID = ['etc', 'var'];

/**
 * Top-level directories the node has of its own: the host's is not a layer under the node's.
 * Root's home (the master gets /root/.kube/config) would otherwise hold the host's dotfiles:
 * the host's shell start-up would run in the node (on the build machines its `pyenv init`
 * rewrote shims in the node's upper layer, and ssh sessions multiplexed into the master hung
 * there), and the host's secrets would be readable in the node.
 */
const OWN = new Set(['root', 'home']);

export function runDir(view: NodeView): string {
  return join(view.dir, 'run');
}

function treeDir(view: NodeView): string {
  return join(view.dir, 'tree');
}

/** Where a file at `path` on the node lives on the host (rendered or installed by the lab). */
export function hostPath(view: NodeView, path: string): string {
  return join(treeDir(view), path);
}

/** Where the node's writes to `path` land on the host (e.g. the CNI store under /var). */
export function writtenPath(view: NodeView, path: string): string {
  return join(view.dir, 'upper', path);
}

/** Writes the node's rendered tree into its view, with each file's mode. */
export function installView(view: NodeView, files: RenderedFile[]): void {
  rmSync(treeDir(view), { recursive: true, force: true });
  for (const top of ALWAYS_OVERLAID) mkdirSync(join(treeDir(view), top), { recursive: true });
  mkdirSync(runDir(view), { recursive: true });
  for (const f of files) installFile(view, f);
}

export function installFile(view: NodeView, f: RenderedFile): void {
  const target = hostPath(view, f.path);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, f.content, { mode: f.mode });
  chmodSync(target, f.mode);
}

export function removeView(view: NodeView): void {
  rmSync(view.dir, { recursive: true, force: true });
}

/** The shell commands that build the node's mount view. */
function viewMounts(view: NodeView): string[] {
  const tops = readdirSync(treeDir(view), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const mounts = tops.map((top) => {
    const upper = join(view.dir, 'upper', top);
    const work = join(view.dir, 'work', top);
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
    const lower = OWN.has(top) ? join(treeDir(view), top) : `${join(treeDir(view), top)}:/${top}`;
    const options = `lowerdir=${lower},upperdir=${upper},workdir=${work}`;
    return `mount -t overlay kube-ipsec-${top} -o ${shellQuote(options)} /${top}`;
  });
  // The host's named network namespaces stay reachable at /run/netns (CNI_NETNS paths).
  const netns = join(runDir(view), 'netns');
  mkdirSync(netns, { recursive: true });
  return [...mounts, `mount --rbind /run/netns ${shellQuote(netns)}`, `mount --rbind ${shellQuote(runDir(view))} /run`];
}

/**
 * Builds the node's mount view once: a holder process (`sleep infinity`) in the node's
 * network namespace with the overlays mounted. Its PID is recorded in <node dir>/holder.pid
 * so a later `down` can find it even after a crash.
 */
export async function openView(view: NodeView, timeoutMs = 10_000): Promise<number> {
  const script = `${viewMounts(view).join(' && ')} && exec sleep infinity`;
  const child = spawn('ip', ['netns', 'exec', view.ns, 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.unref();
  const pid = child.pid!;
  const deadline = Date.now() + timeoutMs;
  // Ready once the holder is sleeping in a mount namespace that shows the /run bind.
  while (!isHolderReady(pid)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`node view of ${view.ns} did not come up (exit ${child.exitCode}): ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // The holder outlives this process (`lab up` returns, the lab stays): let go of its stderr.
  child.stderr!.destroy();
  writeFileSync(join(view.dir, 'holder.pid'), `${pid}\n`);
  view.holder = pid;
  return pid;
}

/** The holder runs `sleep` only once every mount of the `&&` chain has succeeded. */
function isHolderReady(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`).endsWith('/sleep');
  } catch {
    return false;
  }
}

/** argv running `argv` as the node: its network namespace, its files, its /run. */
export function inNode(view: NodeView, argv: readonly string[]): string[] {
  if (!view.holder) throw new Error(`node view of ${view.ns} is not open (openView first)`);
  return ['nsenter', `--target=${view.holder}`, '--net', '--mount', ...argv];
}
