// `lab down` of a VM lab: stops what it started — captures, the provisioner, the ssh master
// connections, then qemu — each by its recorded PID while it still is that program in the
// lab's wire namespace (plus, after a crash, any process in the lab's namespaces whose
// command line names this lab's state directory: a qemu whose PID was not recorded yet);
// deletes the taps and namespaces; removes the overlays and the lab's files. The image cache
// is kept. Idempotent.
import { readFileSync, rmSync } from 'node:fs';
import { deleteNamespaces, ipBatch, prefixedNamespaces } from '../network.ts';
import { comm, netnsInode, stopProcesses, type StopReport } from '../procs.ts';
import type { Runner } from '../../run.ts';
import type { LabProcess, LabStateData } from '../state.ts';
import { QEMU_COMM, pidFromFile, vmFiles } from './qemu.ts';

export interface VmDownReport {
  processes: StopReport;
  taps: string[];
  namespaces: string[];
  overlays: string[];
  warnings: string[];
}

export async function vmDown(
  runner: Runner,
  stateDir: string,
  data: LabStateData,
  processesIn: (names: string[]) => { pid: number; comm: string; ns: string }[],
): Promise<VmDownReport> {
  const warnings: string[] = [];
  const t = data.topology;
  const wire = t.wire.ns;
  const names = [...new Set([...data.namespaces, ...prefixedNamespaces(data.prefix)])];
  const recorded = data.processes;
  // qemu started but not recorded yet (crash in between): its pidfile names it.
  const fromPidfiles = (data.vm?.layout.nodes ?? []).flatMap((v): LabProcess[] => {
    const pid = pidFromFile(vmFiles(stateDir, v.name));
    return pid ? [{ pid, comm: QEMU_COMM, ns: wire, role: 'vm', node: v.name, what: `VM ${v.name}` }] : [];
  });
  // Anything else of this lab still in its namespaces (an ssh or qemu a crash left unrecorded).
  const strays = processesIn(names)
    .filter((p) => cmdline(p.pid).includes(stateDir))
    .map((p): LabProcess => ({ pid: p.pid, comm: p.comm, ns: p.ns, role: p.comm === QEMU_COMM ? 'vm' : 'ssh', what: `${p.comm} of this lab (unrecorded)` }));
  const all = [...recorded, ...fromPidfiles, ...strays].filter((p, i, a) => a.findIndex((q) => q.pid === p.pid) === i);
  const groups = [all.filter((p) => p.role === 'capture' || p.role === 'provision'), all.filter((p) => p.role === 'ssh'), all.filter((p) => p.role === 'vm')];
  const processes = await stopProcesses(groups, 5000);
  for (const p of processes.survivors) warnings.push(`${p.what} (pid ${p.pid}) survived SIGKILL`);
  for (const p of processes.skipped)
    if (comm(p.pid) === p.comm && p.role === 'vm') warnings.push(`${p.what}: pid ${p.pid} is a ${p.comm} outside the lab's namespace: left alone`);

  const taps = netnsInode(wire) !== undefined ? await existingLinks(runner, wire, data.vm?.taps ?? []) : [];
  if (taps.length)
    await ipBatch(
      runner,
      wire,
      taps.map((tap) => `link del ${tap}`),
    );
  const namespaces = await deleteNamespaces(runner, names);
  const overlays = data.vm?.overlays ?? [];
  for (const f of overlays) rmSync(f, { force: true });
  return { processes, taps, namespaces, overlays, warnings };
}

async function existingLinks(runner: Runner, ns: string, names: string[]): Promise<string[]> {
  const r = await runner.run(['ip', '-n', ns, '-o', 'link', 'show'], { allowFail: true, timeoutMs: 20_000 });
  const present = new Set([...r.stdout.matchAll(/^\d+: ([^:@]+)[:@]/gm)].map((m) => m[1]!));
  return names.filter((n) => present.has(n));
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}
