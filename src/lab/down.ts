// `lab down`: removes what the lab created and nothing else. Pods are deleted through the
// plugin (as the kubelet would) while their node still runs; then the recorded processes
// are stopped by PID — strongSwan's starter before its charon, the node views last — each
// only while it still is the program the lab started, in a lab namespace; after a crashed
// `up`, daemons whose start was still in flight are found the same way (a lab program inside
// a lab namespace). Then the lab's namespaces (recorded, or carrying its prefix) and its
// files. Idempotent, and safe after an `up` that crashed at any point.
import { existsSync, readdirSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.ts';
import { openLab } from './open.ts';
import { deleteNamespaces, prefixedNamespaces } from './network.ts';
import { delPod } from '../check/pods.ts';
import { netnsInode, processNetnsInode, stopProcesses, type StopReport } from './procs.ts';
import { processRunner, type Runner } from '../run.ts';
import { readState, STATE_FILE, type LabProcess } from './state.ts';
import { strongswanProcesses } from './strongswan.ts';

export interface DownReport {
  /** false: nothing was recorded in the state dir. */
  found: boolean;
  podsDeleted: number;
  processes: StopReport;
  namespaces: string[];
  /** Processes still inside lab namespaces that are none of the lab's programs (left alone). */
  strangers: { pid: number; comm: string; ns: string }[];
  /** Mounts of the lab's files still held somewhere (files are then kept). */
  mountsLeft: string[];
  /** VM lab: tap devices deleted, overlays removed. */
  taps?: string[];
  overlays?: string[];
  warnings: string[];
}

/** Files and directories the lab writes into its state dir (and nothing else is removed). */
const LAB_FILES = [STATE_FILE, 'nodes', 'out', 'pki', 'cluster.yaml', 'captures', 'vms', 'ssh', 'binaries', 'image-build'];

export async function down(stateDir: string, opts: { runner?: Runner; log?: (line: string) => void } = {}): Promise<DownReport> {
  const runner = opts.runner ?? processRunner;
  const log = opts.log ?? (() => {});
  const report: DownReport = {
    found: false,
    podsDeleted: 0,
    processes: { stopped: [], skipped: [], survivors: [] },
    namespaces: [],
    strangers: [],
    mountsLeft: [],
    warnings: [],
  };
  const data = readState(stateDir);
  if (!data) return report;
  report.found = true;

  const names = [...new Set([...data.namespaces, ...prefixedNamespaces(data.prefix)])];
  if (data.backend === 'vm') {
    // Pods die with their VM: nothing on this host to delete them from.
    const { vmDown } = await import('./vm/down.ts');
    const r = await vmDown(runner, stateDir, data, processesIn);
    Object.assign(report, { processes: r.processes, namespaces: r.namespaces, taps: r.taps, overlays: r.overlays });
    report.warnings.push(...r.warnings);
  } else {
    const lab = openLab(stateDir, runner);
    report.podsDeleted = await deletePods(lab, report.warnings);
    report.processes = await stopProcesses(processGroups(lab));
    // An `up` that crashed may have left starts in flight whose daemons appear only now: stop
    // the lab's own programs found inside the lab's namespaces; let short-lived commands end.
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = processesIn(names);
      const daemons = found
        .filter((p) => LAB_DAEMONS.has(p.comm))
        .map((p): LabProcess => ({ ...p, role: p.comm === 'sleep' ? 'view' : p.comm === 'tcpdump' ? 'capture' : 'strongswan', what: `${p.comm} in ${p.ns}` }));
      if (daemons.length)
        merge(report.processes, await stopProcesses([daemons.filter((p) => p.comm === 'starter'), daemons.filter((p) => p.comm !== 'starter')]));
      if (!found.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of report.processes.survivors) report.warnings.push(`${p.what} (pid ${p.pid}) survived SIGKILL`);

    report.strangers = processesIn(names);
    for (const s of report.strangers)
      report.warnings.push(`pid ${s.pid} (${s.comm}) in ${s.ns} was not started by the lab: left alone (its namespace lives on until it exits)`);
    report.namespaces = await deleteNamespaces(runner, names);
  }
  log(`stopped ${report.processes.stopped.length} processes, deleted ${report.namespaces.length} namespaces and ${report.podsDeleted} pods`);

  report.mountsLeft = mountsUnder(stateDir);
  if (report.mountsLeft.length) {
    report.warnings.push(`the lab's files are still mounted (${report.mountsLeft.length} mounts, e.g. ${report.mountsLeft[0]}): kept ${stateDir}`);
  } else {
    for (const f of LAB_FILES) rmSync(join(stateDir, f), { recursive: true, force: true });
    try {
      rmdirSync(stateDir); // only if the lab's files were all it held
    } catch {
      // not empty: someone else's files are there too
    }
  }
  return report;
}

/** Long-running programs the lab starts in its namespaces (node views, strongSwan, captures). */
const LAB_DAEMONS = new Set(['sleep', 'starter', 'charon', 'tcpdump']);

function merge(into: StopReport, more: StopReport): void {
  into.stopped.push(...more.stopped);
  into.skipped.push(...more.skipped);
  into.survivors.push(...more.survivors);
}

/** CNI DEL of every pod whose node still runs (best effort: down goes on regardless). */
async function deletePods(lab: Lab, warnings: string[]): Promise<number> {
  let deleted = 0;
  await Promise.all(
    lab.topology.nodes.flatMap((node) => {
      const view = lab.views.get(node.name)!;
      if (!view.holder) return [];
      return node.pods
        .filter((p) => lab.state.data.pods[p.ns] && netnsInode(p.ns) !== undefined)
        .map(async (pod) => {
          try {
            await delPod(lab, pod);
            deleted++;
          } catch (err) {
            warnings.push((err as Error).message);
          }
        });
    }),
  );
  return deleted;
}

/** Recorded processes plus the current strongSwan pid files, in stopping order. */
function processGroups(lab: Lab): LabProcess[][] {
  const recorded = lab.state.data.processes;
  const fromPidFiles = lab.topology.nodes.flatMap((node) =>
    strongswanProcesses(lab.views.get(node.name)!).map(
      (p): LabProcess => ({ pid: p.pid, comm: p.comm, ns: node.ns, role: 'strongswan', node: node.name, what: `${p.comm} of ${node.name}` }),
    ),
  );
  const all = [...recorded, ...fromPidFiles].filter((p, i, a) => a.findIndex((q) => q.pid === p.pid) === i);
  return [
    all.filter((p) => p.role === 'capture'),
    all.filter((p) => p.comm === 'starter'),
    all.filter((p) => p.role === 'strongswan' && p.comm !== 'starter'),
    all.filter((p) => p.role === 'view'),
  ];
}

/** Processes whose network namespace is one of `names`. */
function processesIn(names: string[]): { pid: number; comm: string; ns: string }[] {
  const byInode = new Map<number, string>();
  for (const n of names) {
    const ino = netnsInode(n);
    if (ino !== undefined) byInode.set(ino, n);
  }
  if (!byInode.size) return [];
  const out: { pid: number; comm: string; ns: string }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const ns = byInode.get(processNetnsInode(Number(e)) ?? -1);
    if (ns === undefined) continue;
    let comm = '?';
    try {
      comm = readFileSync(`/proc/${e}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    out.push({ pid: Number(e), comm, ns });
  }
  return out;
}

/** Mount points, in any process's mount namespace, of or under `dir`. */
export function mountsUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const hits = new Set<string>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${e}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (line.includes(dir)) hits.add(`pid ${e}: ${line.split(' ')[4]}`);
  }
  return [...hits];
}
