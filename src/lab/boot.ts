// A node's boot, as its VM does it: the rendered tree and the plugin installed where
// provisioning puts them, then what systemd runs before strongSwan — the sysctl.d file
// (systemd-sysctl) and kube-ipsec-network.service's ExecStart (the rendered node-network
// script) — each inside the node, with the node's own files.
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { linkOrCopy } from './link.ts';
import { PATHS, UNITS } from '../plan/paths.ts';
import type { RenderedFile } from '../render/files.ts';
import { hostPath, inNode, installView, type NodeView } from './node-view.ts';
import type { Runner } from '../run.ts';

const PLUGIN_ON_NODE = `${PATHS.cniBinDir}/ipsec-cni`;

/** Writes the node's tree and puts the compiled plugin at /opt/cni/bin/ipsec-cni. */
export function installNode(view: NodeView, files: RenderedFile[], plugin: string): void {
  installView(view, files);
  const target = hostPath(view, PLUGIN_ON_NODE);
  mkdirSync(dirname(target), { recursive: true });
  rmSync(target, { force: true });
  linkOrCopy(plugin, target);
  chmodSync(target, 0o755);
}

export interface UnitCommand {
  argv: string[];
  /** systemd's `-` prefix: a failure does not fail the unit. */
  ignoreFailure: boolean;
}

/** `key=` lines (ExecStart, ExecStartPre, …) of a unit file or drop-in, as argv (no shell; systemd's prefixes honoured; an empty assignment resets the list, as in a drop-in). */
export function execLines(unitText: string, key: 'ExecStart' | 'ExecStartPre' | 'ExecStartPost' = 'ExecStart'): UnitCommand[] {
  let out: UnitCommand[] = [];
  for (const m of unitText.replace(/\\\n/g, ' ').matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))) {
    let line = m[1]!.trim();
    if (!line) {
      out = [];
      continue;
    }
    let ignoreFailure = false;
    while (/^[-@:+!]/.test(line)) {
      if (line[0] === '-') ignoreFailure = true;
      line = line.slice(1);
    }
    if (line) out.push({ argv: line.split(/\s+/), ignoreFailure });
  }
  return out;
}

export const execStarts = (unitText: string): UnitCommand[] => execLines(unitText, 'ExecStart');

/** Runs a unit's commands inside the node, as systemd would (a failure fails unless `-`). */
export async function runUnitCommands(runner: Runner, view: NodeView, commands: readonly UnitCommand[]): Promise<void> {
  for (const c of commands) await runner.run(inNode(view, c.argv), { allowFail: c.ignoreFailure, timeoutMs: 90_000 });
}

/** What the node's boot runs before strongSwan: sysctl.d, then the node network unit. */
export async function bootNode(runner: Runner, view: NodeView): Promise<void> {
  await runner.run(inNode(view, ['sysctl', '-q', '-p', PATHS.sysctl]), { timeoutMs: 20_000 });
  const unit = readFileSync(hostPath(view, `${PATHS.systemdDir}/${UNITS.nodeNetwork}`), 'utf8');
  const commands = execStarts(unit);
  if (!commands.length) throw new Error(`${UNITS.nodeNetwork} of ${view.ns} has no ExecStart`);
  await runUnitCommands(runner, view, commands);
}
