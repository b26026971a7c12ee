// Mesh convergence with kernel ESP, measured in the VMs: every node's strongSwan stopped, then
// all started at once, and the time until every node reaches every other node's pods (its
// bridge address, inside the peer's selector) and until every IKE/CHILD SA pair is up.
// Run with the rendered `auto=start`, or with `auto=route` (trap policies: tunnels come up on
// the first packet) written into each node's ipsec.conf for the measurement; provisioning
// puts the rendered file back afterwards.
import { timer } from '../../clock.ts';
import type { Lab } from '../lab.ts';
import { meshStatus } from '../../check/mesh.ts';
import { ping } from '../../check/probe.ts';
import { waitFor } from '../../run.ts';
import { UNITS } from '../../plan/paths.ts';

export type StartAction = 'start' | 'route';

export interface Convergence {
  action: StartAction;
  /** Seconds from starting every strongSwan until every node reached every peer's pods. */
  traffic?: number;
  /** … until every IKE_SA/CHILD_SA pair was up at both ends. */
  sas?: number;
  /** Pings sent in vain (lost while a tunnel was coming up). */
  lost: number;
}

/** sed expression setting `auto=` in ipsec.conf. */
export function autoSed(action: StartAction): string {
  return `s/^\\([[:space:]]*auto=\\).*/\\1${action}/`;
}

export async function setStartAction(lab: Lab, action: StartAction): Promise<void> {
  await Promise.all(lab.topology.nodes.map((n) => lab.runner.run(lab.backend.onNode(n.name, ['sed', '-i', autoSed(action), '/etc/ipsec.conf']), { timeoutMs: 30_000 })));
}

export async function measureConvergence(lab: Lab, action: StartAction, timeoutMs = 120_000): Promise<Convergence> {
  const nodes = lab.topology.nodes;
  await setStartAction(lab, action);
  await Promise.all(nodes.map((n) => lab.backend.stopStrongswan(n.name)));
  const result: Convergence = { action, lost: 0 };
  const since = timer();
  await Promise.all(nodes.map((n) => lab.runner.run(lab.backend.onNode(n.name, ['systemctl', 'start', UNITS.strongswan]), { timeoutMs: 60_000 })));
  const pairs = nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => ({ from: a.ns, to: b.gateway })));
  const reached = await Promise.all(
    pairs.map((p) =>
      waitFor(
        async () => {
          const ok = (await ping(lab, p.from, p.to, { wait: 1 })).ok;
          if (!ok) result.lost++;
          return ok;
        },
        timeoutMs,
        0,
      ),
    ),
  );
  if (reached.every(Boolean)) result.traffic = since();
  if (await waitFor(async () => (await meshStatus(lab)).every((p) => p.up), timeoutMs, 250)) result.sas = since();
  return result;
}
