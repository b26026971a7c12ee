// Starting the lab's strongSwan the way the nodes' units do (`ipsec start`), recording the
// PIDs, and timing the mesh: from launching every charon to every IKE/CHILD SA pair up.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { timer } from '../clock.ts';
import type { Lab } from './lab.ts';
import { meshStatus } from '../check/mesh.ts';
import { runDir, type NodeView } from './node-view.ts';
import { waitFor } from '../run.ts';
import { startStrongswan, strongswanProcesses } from './strongswan.ts';
import type { LabNode } from './topology.ts';

/** `ipsec start` in the node (as strongswan-starter.service does), its PIDs recorded. */
export async function startNodeStrongswan(lab: Pick<Lab, 'views' | 'runner' | 'state'>, node: LabNode): Promise<void> {
  const view = lab.views.get(node.name)!;
  await startStrongswan(lab.runner, view);
  recordStrongswan(lab, node, view);
}

export function recordStrongswan(lab: Pick<Lab, 'state'>, node: LabNode, view: NodeView): void {
  for (const p of strongswanProcesses(view)) {
    lab.state.addProcess({ pid: p.pid, comm: p.comm, ns: node.ns, role: 'strongswan', node: node.name, what: `${p.comm} of ${node.name}` });
  }
}

export interface MeshStart {
  /** Seconds until every charon listened on its control socket. */
  listening: number;
  /** Seconds until every node pair had its SAs up; undefined: not within the timeout. */
  converged?: number;
}

/**
 * Launches strongSwan on every node at once and times the mesh. SAs are polled every
 * `pollMs` only once every charon listens (a file check; startStrongswan removes a stale
 * socket before it starts): polling earlier would only take CPU from the charons starting.
 */
export async function startMesh(lab: Lab, timeoutMs: number, pollMs = 50): Promise<MeshStart> {
  const since = timer();
  let failed: { error: unknown } | undefined;
  const starting = Promise.all(lab.topology.nodes.map((n) => startNodeStrongswan(lab, n))).catch((error: unknown) => void (failed = { error }));
  const views = [...lab.views.values()];
  await waitFor(async () => failed !== undefined || views.every((v) => existsSync(join(runDir(v), 'charon.ctl'))), 15_000, 10);
  const listening = since();
  const converged = failed === undefined && (await waitFor(async () => failed !== undefined || (await meshStatus(lab)).every((p) => p.up), timeoutMs, pollMs));
  const seconds = since();
  await starting;
  if (failed) throw failed.error;
  return { listening, ...(converged && { converged: seconds }) };
}
