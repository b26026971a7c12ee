// A running lab as seen by any process: its recorded state, topology and node views
// (joined through the holder processes `up` started), so `check`, `status` and `down` can
// run from another command than the one that brought it up.
import { join } from 'node:path';
import type { LabBackend } from './backend.ts';
import { netnsBackend } from './netns-backend.ts';
import { vmBackend } from './vm/backend.ts';
import { LabError } from './host.ts';
import type { NodeView } from './node-view.ts';
import { isOurs } from './procs.ts';
import { processRunner, type Runner } from './run.ts';
import { LabState, nodeDir } from './state.ts';
import type { LabNode, LabTopology } from './topology.ts';

export interface Lab {
  stateDir: string;
  state: LabState;
  topology: LabTopology;
  /** Node name → its view (holder set when the view is still open; namespace lab only). */
  views: Map<string, NodeView>;
  runner: Runner;
  /** How commands reach the nodes: namespaces on this host, or VMs. */
  backend: LabBackend;
}

export function viewOf(stateDir: string, node: LabNode, holder?: number): NodeView {
  return { ns: node.ns, dir: nodeDir(stateDir, node.name), ...(holder !== undefined && { holder }) };
}

/** The lab recorded in `stateDir`; views whose holder is no longer ours have no holder. */
export function openLab(stateDir: string, runner: Runner = processRunner): Lab {
  const state = LabState.open(stateDir);
  const topology = state.data.topology;
  const holders = new Map(state.data.processes.filter((p) => p.role === 'view' && isOurs(p)).map((p) => [p.node!, p.pid]));
  const views = new Map(topology.nodes.map((n) => [n.name, viewOf(stateDir, n, holders.get(n.name))]));
  const parts = { stateDir, state, topology, views, runner };
  return { ...parts, backend: state.data.backend === 'vm' ? vmBackend(parts) : netnsBackend(parts) };
}

/** The lab must be fully up (not a crashed or half-finished `up`). */
export function requireUp(lab: Lab): void {
  if (lab.state.data.phase !== 'up') throw new LabError(`the lab in ${lab.stateDir} did not finish coming up: run \`npm run lab -- down\`, then \`up\` again`);
  lab.backend.requireUp();
}

export function capturesDir(lab: Lab): string {
  return join(lab.stateDir, 'captures');
}
