// A running lab as seen by any process: its recorded state, topology and node views
// (joined through the holder processes `up` started), so `check`, `status` and `down` can
// run from another command than the one that brought it up. The state names the backend.
import { labOf, viewOf, type Lab } from './lab.ts';
import { netnsBackend } from './netns-backend.ts';
import { isOurs } from './procs.ts';
import { processRunner, type Runner } from '../run.ts';
import { LabState } from './state.ts';
import { vmLab } from './vm/backend.ts';

/** The lab recorded in `stateDir`; views whose holder is no longer ours have no holder. */
export function openLab(stateDir: string, runner: Runner = processRunner): Lab {
  const state = LabState.open(stateDir);
  const topology = state.data.topology;
  const holders = new Map(state.data.processes.filter((p) => p.role === 'view' && isOurs(p)).map((p) => [p.node!, p.pid]));
  const views = new Map(topology.nodes.map((n) => [n.name, viewOf(stateDir, n, holders.get(n.name))]));
  const parts = { stateDir, state, topology, views, runner };
  return state.data.backend === 'vm' ? vmLab(parts) : labOf(parts, netnsBackend(parts));
}
