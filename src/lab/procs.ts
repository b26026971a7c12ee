// The lab's processes, and only those: a recorded PID is acted on only while it still runs
// the expected program inside one of the lab's own network namespaces (a PID reused by an
// unrelated process fails one of the two tests). Never by name, never all at once.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from './strongswan.ts';
import { NETNS_DIR } from '../check/target.ts';
import type { LabProcess } from './state.ts';

/** Inode of a named network namespace, undefined if it does not exist. */
export function netnsInode(ns: string): number | undefined {
  try {
    return statSync(join(NETNS_DIR, ns)).ino;
  } catch {
    return undefined;
  }
}

/** Inode of the network namespace `pid` runs in. */
export function processNetnsInode(pid: number): number | undefined {
  try {
    const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Still the process the lab started: same program, in the recorded lab namespace, not a zombie. */
export function isOurs(p: LabProcess): boolean {
  if (!Number.isInteger(p.pid) || p.pid <= 1 || !alive(p.pid)) return false;
  if (comm(p.pid) !== p.comm) return false;
  const ino = netnsInode(p.ns);
  return ino !== undefined && processNetnsInode(p.pid) === ino;
}

export interface StopReport {
  /** Terminated (TERM or, after the grace period, KILL). */
  stopped: LabProcess[];
  /** Recorded but not ours any more (exited, or the PID now belongs to something else). */
  skipped: LabProcess[];
  /** Still running after KILL (should not happen). */
  survivors: LabProcess[];
}

/**
 * Stops the given processes in order groups (e.g. supervisors before what they supervise):
 * SIGTERM, a grace period, then SIGKILL for what is left.
 */
export async function stopProcesses(groups: LabProcess[][], graceMs = 3000): Promise<StopReport> {
  const report: StopReport = { stopped: [], skipped: [], survivors: [] };
  for (const group of groups) {
    const ours = group.filter((p) => {
      if (isOurs(p)) return true;
      report.skipped.push(p);
      return false;
    });
    for (const p of ours) signal(p.pid, 'SIGTERM');
    await until(() => ours.every((p) => !alive(p.pid)), graceMs);
    for (const p of ours) if (isOurs(p)) signal(p.pid, 'SIGKILL');
    await until(() => ours.every((p) => !alive(p.pid)), 2000);
    for (const p of ours) (alive(p.pid) ? report.survivors : report.stopped).push(p);
  }
  return report;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}
