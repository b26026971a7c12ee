// Test pods on a cluster the check does not own (`kube-ipsec check`): made by each node's
// installed plugin, in network namespaces this run creates, and removed afterwards by DEL
// through the same plugin — the way a runtime removes a pod. DEL releases the addresses, but
// the store also keeps a rotation cursor (the next ADD starts after the last address handed
// out), which the test pods moved. So each node's store is read before the pods are made and
// put back afterwards, byte for byte, when nothing but that cursor differs — under the
// plugin's own lock, and only if the file is still exactly what was read after the DELs. If a
// real pod came or went meanwhile, the store is the runtime's and stays as it is.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { parseStore } from '../cni/ipam/format.ts';
import { PATHS } from '../plan/paths.ts';
import { shellQuote } from '../shell.ts';
import { delPod, nodeConflist, pluginConfig } from './pods.ts';
import { NETNS_DIR, type CheckPod, type ClusterExec } from './target.ts';

export interface StoreSnapshot {
  node: string;
  network: string;
  /** The store file and the lock the plugin takes for every change of it. */
  path: string;
  lock: string;
  /** Its content when read (undefined: there was none). */
  text?: string;
}

/** The node's IPAM store as its installed plugin configuration places it. */
export async function snapshotStore(lab: ClusterExec, node: string): Promise<StoreSnapshot> {
  const plugin = JSON.parse(pluginConfig(await nodeConflist(lab, node))) as { name: string; dataDir?: string };
  const dir = plugin.dataDir ?? PATHS.cniDataDir;
  const path = join(dir, `${plugin.name}.json`);
  const text = await readStore(lab, node, path);
  return { node, network: plugin.name, path, lock: join(dir, `${plugin.name}.lock`), ...(text !== undefined && { text }) };
}

/** The store's content, undefined if the node has none; a node that cannot be asked is an error, never "no store". */
async function readStore(lab: ClusterExec, node: string, path: string): Promise<string | undefined> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['sh', '-c', '[ -e "$1" ] || exit 3; cat -- "$1"', 'read-store', path]), {
    allowFail: true,
    timeoutMs: 20_000,
  });
  if (r.code === 3) return undefined;
  if (r.code !== 0) throw new Error(`${node}: cannot read ${path}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  return r.stdout;
}

export type Restoration =
  | { action: 'none' }
  /** Put `before` back (or remove the file it did not have), if the file is still `now` (its sha256). */
  | { action: 'restore' | 'remove'; nowSha256: string }
  | { action: 'leave'; why: string };

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** JSON with object keys sorted: two allocation maps compare equal whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** What to do with a store found as `before` and read as `now` after the test pods' DELs (pure). */
export function restoration(s: Pick<StoreSnapshot, 'path' | 'network'>, before: string | undefined, now: string | undefined): Restoration {
  if (now === before) return { action: 'none' };
  if (now === undefined) return { action: 'leave', why: `${s.path} was removed meanwhile` };
  let allocationsNow: string;
  try {
    allocationsNow = canonical(parseStore(now, s.path, s.network).allocations);
  } catch (err) {
    return { action: 'leave', why: (err as Error).message };
  }
  if (before === undefined) {
    return allocationsNow === '{}' ? { action: 'remove', nowSha256: sha256(now) } : { action: 'leave', why: 'other pods took addresses meanwhile' };
  }
  let allocationsBefore: string;
  try {
    allocationsBefore = canonical(parseStore(before, s.path, s.network).allocations);
  } catch (err) {
    return { action: 'leave', why: `it was unreadable before the check: ${(err as Error).message}` };
  }
  return allocationsNow === allocationsBefore
    ? { action: 'restore', nowSha256: sha256(now) }
    : { action: 'leave', why: 'other pods took or released addresses meanwhile' };
}

/**
 * argv (run as root on the node) that puts the store back under the plugin's lock: only if
 * the file still has `nowSha256` (exit 3 otherwise); written as the plugin writes it (temp
 * file, fsync, rename, fsync of the directory). The old content comes on stdin.
 */
export function restoreArgv(s: StoreSnapshot, r: Extract<Restoration, { nowSha256: string }>): string[] {
  const put = r.action === 'restore' ? 'cat >"$1.tmp" && sync "$1.tmp" && mv -f "$1.tmp" "$1"' : 'cat >/dev/null && rm -f "$1"';
  const script = `[ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$2" ] || exit 3; ${put} && sync "$(dirname "$1")"`;
  return ['flock', '-w', '10', s.lock, 'sh', '-c', script, 'restore-store', s.path, r.nowSha256];
}

export interface StoreOutcome {
  node: string;
  path: string;
  /** The file is byte for byte what it was before the check. */
  asFound: boolean;
  detail: string;
}

/** Puts one node's store back as found, if only the test pods changed it. */
export async function restoreStore(lab: ClusterExec, s: StoreSnapshot): Promise<StoreOutcome> {
  const now = await readStore(lab, s.node, s.path);
  const r = restoration(s, s.text, now);
  const out = (asFound: boolean, detail: string): StoreOutcome => ({ node: s.node, path: s.path, asFound, detail });
  if (r.action === 'none') return out(true, 'as found');
  if (r.action === 'leave') return out(false, `left as it is: ${r.why}`);
  const done = await lab.runner.run(lab.backend.onNode(s.node, restoreArgv(s, r)), { input: s.text ?? '', allowFail: true, timeoutMs: 30_000 });
  if (done.code === 3) return out(false, 'left as it is: a pod changed it while the check put it back');
  if (done.code !== 0) return out(false, `could not be put back: ${(done.stderr || done.stdout).trim()}`);
  const after = await readStore(lab, s.node, s.path);
  return after === s.text
    ? out(true, r.action === 'restore' ? 'as found (its rotation cursor put back)' : 'as found (none, as before)')
    : out(false, 'differs after putting it back');
}

export interface PodRemoval {
  /** Pods whose DEL through the plugin succeeded. */
  deleted: number;
  problems: string[];
}

/** DEL of every test pod through its node's plugin (the runtime's way), then its network namespace. */
export async function removePods(lab: ClusterExec, pods: CheckPod[]): Promise<PodRemoval> {
  const problems: string[] = [];
  let deleted = 0;
  await Promise.all(
    pods.map(async (p) => {
      try {
        await delPod(lab, p);
        deleted++;
      } catch (err) {
        problems.push((err as Error).message);
      }
    }),
  );
  const byNode = new Map<string, CheckPod[]>();
  for (const p of pods) byNode.set(p.node, [...(byNode.get(p.node) ?? []), p]);
  await Promise.all(
    [...byNode].map(async ([node, ps]) => {
      // `ip netns del` of a namespace that is gone (a reboot) fails: only those that exist.
      const script = `for ns; do [ -e ${NETNS_DIR}/"$ns" ] && ip netns del "$ns"; done; true`;
      const r = await lab.runner.run(lab.backend.onNode(node, ['sh', '-c', script, 'del-netns', ...ps.map((p) => p.ns)]), {
        allowFail: true,
        timeoutMs: 30_000,
      });
      if (r.code !== 0) problems.push(`${node}: deleting the test pods' network namespaces: ${(r.stderr || r.stdout).trim()}`);
    }),
  );
  return { deleted, problems };
}

/**
 * argv ending what a run left on a node: its programs (captures, probes: PID files in its run
 * directory — a PID is signalled only while it still runs under the run's timeout(1)), its
 * units (captures across a reboot, named after the run) and their directories.
 */
export function leftoversArgv(o: { runDir: string; lifetimeS: number; units: string; unitDir: string; bootDir: string }): string[] {
  const script = [
    `for f in ${shellQuote(o.runDir)}/*.pid; do`,
    '  [ -e "$f" ] || continue; p=$(cat "$f")',
    `  tr '\\0' ' ' </proc/"$p"/cmdline 2>/dev/null | grep -q '^timeout ${o.lifetimeS} ' && kill -TERM "$p"`,
    'done',
    `rm -rf ${shellQuote(o.runDir)}; rmdir "$(dirname ${shellQuote(o.runDir)})" 2>/dev/null`,
    `for u in ${shellQuote(o.unitDir)}/${o.units}; do`,
    '  [ -e "$u" ] || continue; systemctl disable --now --quiet "$(basename "$u")"; rm -f "$u"; reload=1',
    'done',
    '[ -z "$reload" ] || systemctl daemon-reload',
    `rm -rf ${shellQuote(o.bootDir)}; rmdir "$(dirname ${shellQuote(o.bootDir)})" 2>/dev/null; true`,
  ].join('\n');
  return ['sh', '-c', script];
}
