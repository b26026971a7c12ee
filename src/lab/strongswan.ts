// strongSwan in a node namespace, started the way the node's unit does (its drop-in's
// ExecStartPre, `ipsec start` — starter reads /etc/ipsec.conf and supervises charon —, then
// its ExecStartPost), with the node's own /etc and /run.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PATHS, UNITS } from '../plan/paths.ts';
import { execLines, runUnitCommands } from './boot.ts';
import { hostPath, inNode, runDir, type NodeView } from './node-view.ts';
import { waitFor, type Runner } from '../run.ts';

export function ipsec(runner: Runner, view: NodeView, args: string[], allowFail = false) {
  return runner.run(inNode(view, ['ipsec', ...args]), { allowFail, timeoutMs: 20_000 });
}

/** PIDs of this node's starter and charon, from their pid files in the node's /run. */
function strongswanPids(view: NodeView): number[] {
  return strongswanProcesses(view).map((p) => p.pid);
}

/**
 * Starts starter+charon and waits until charon has the connections of ipsec.conf (starter
 * loads them through the control socket once charon is up).
 */
export async function startStrongswan(runner: Runner, view: NodeView, timeoutMs = 15_000): Promise<number[]> {
  const ctl = join(runDir(view), 'charon.ctl');
  // A charon that was stopped may leave its socket behind; waiting for it would then be no wait.
  if (!strongswanPids(view).some(alive)) rmSync(ctl, { force: true });
  const dropIns = unitDropIns(view, UNITS.strongswan);
  await runUnitCommands(runner, view, execLines(dropIns, 'ExecStartPre'));
  await ipsec(runner, view, ['start']);
  // charon's control socket first (a file check, no process), then ask for the connections.
  await waitFor(async () => existsSync(ctl), timeoutMs, 10);
  const up = await waitFor(
    async () => {
      const r = await ipsec(runner, view, ['statusall'], true);
      return r.code === 0 && /^Connections:/m.test(r.stdout);
    },
    timeoutMs,
    50,
  );
  if (!up) throw new Error(`strongSwan in ${view.ns} did not come up within ${timeoutMs} ms`);
  await runUnitCommands(runner, view, execLines(dropIns, 'ExecStartPost'));
  return strongswanPids(view);
}

/** The node's drop-ins of `unit`, concatenated in systemd's order (by file name). */
function unitDropIns(view: NodeView, unit: string): string {
  const dir = hostPath(view, `${PATHS.systemdDir}/${unit}.d`);
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .filter((f) => f.endsWith('.conf'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

export async function stopStrongswan(runner: Runner, view: NodeView): Promise<void> {
  const pids = strongswanPids(view);
  await ipsec(runner, view, ['stop'], true);
  await waitFor(async () => pids.every((p) => !alive(p)), 10_000);
  for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
}

/** Running, and not a zombie (daemons here may be reparented to an init that reaps late). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** This node's starter and charon from their pid files, with the program each must be. */
export function strongswanProcesses(view: NodeView): { pid: number; comm: 'starter' | 'charon' }[] {
  const [starter, charon] = (['starter.charon.pid', 'charon.pid'] as const).map((f) => pidFile(join(runDir(view), f)));
  return [...(starter ? [{ pid: starter, comm: 'starter' as const }] : []), ...(charon ? [{ pid: charon, comm: 'charon' as const }] : [])];
}

function pidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
