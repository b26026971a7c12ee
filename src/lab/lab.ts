// A lab: its recorded state, topology and node views, and the backend that reaches its
// nodes (namespaces on this host, or VMs). src/lab/open.ts opens a running one.
import { join } from 'node:path';
import type { CheckTarget, ClusterBackend } from '../check/target.ts';
import { LabError } from './host.ts';
import type { NodeView } from './node-view.ts';
import type { Runner } from '../run.ts';
import { type LabState, nodeDir } from './state.ts';
import type { LabNode, LabTopology } from './topology.ts';

/** A lab is a cluster the checks can check: its state says what runs where. */
export interface Lab extends CheckTarget {
  stateDir: string;
  state: LabState;
  topology: LabTopology;
  /** Node name → its view (holder set when the view is still open; namespace lab only). */
  views: Map<string, NodeView>;
  runner: Runner;
  /** How commands reach the nodes: namespaces on this host, or VMs. */
  backend: ClusterBackend;
}

export interface LabParts {
  stateDir: string;
  state: LabState;
  topology: LabTopology;
  views: Map<string, NodeView>;
  runner: Runner;
}

/** The lab of these parts, reached through `backend`; on VMs the reprovision check may re-provision a node. */
export function labOf(parts: LabParts, backend: ClusterBackend, provision?: (extra: string[]) => Promise<string>): Lab {
  const { state } = parts;
  return {
    ...parts,
    backend,
    label: `lab ${state.data.prefix}`,
    espMode: state.data.espMode,
    get pods() {
      return state.data.pods;
    },
    recordPods: (pods) => state.update({ pods }),
    ...(provision && { provisioning: { configFile: join(parts.stateDir, 'cluster.yaml'), provision } }),
  };
}

export function viewOf(stateDir: string, node: LabNode, holder?: number): NodeView {
  return { ns: node.ns, dir: nodeDir(stateDir, node.name), ...(holder !== undefined && { holder }) };
}

/** The lab must be fully up (not a crashed or half-finished `up`). */
export function requireUp(lab: Lab): void {
  if (lab.state.data.phase !== 'up') throw new LabError(`the lab in ${lab.stateDir} did not finish coming up: run \`npm run lab -- down\`, then \`up\` again`);
  lab.backend.requireUp();
}
