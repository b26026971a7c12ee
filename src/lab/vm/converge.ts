// Mesh convergence with kernel ESP, measured in the VMs: every node's strongSwan stopped, then
// all started at once, and the time until every node reaches every other node's pods (its
// bridge address, inside the peer's selector), until every IKE/CHILD SA pair is up, and
// until every pair holds exactly one of each. Run with the rendered ipsec.conf or a variant
// of it (mesh-variants.ts) written into each node for the measurement.
import { timer } from '../../clock.ts';
import type { Lab } from '../lab.ts';
import { meshStatus } from '../../check/mesh.ts';
import { ping } from '../../check/probe.ts';
import { waitFor } from '../../run.ts';
import { meshVariant, type MeshVariant } from '../mesh-variants.ts';
import { PATHS, UNITS } from '../../plan/paths.ts';
import { readNodeFile } from '../../check/target.ts';

export interface Convergence {
  variant: MeshVariant;
  /** Seconds from starting every strongSwan until every node reached every peer's pods. */
  traffic?: number;
  /** … until every IKE_SA/CHILD_SA pair was up at both ends. */
  sas?: number;
  /** … until every pair held exactly one IKE_SA and one CHILD_SA (within 30 s of being up). */
  whole?: number;
  /** Pings sent in vain (lost while a tunnel was coming up). */
  lost: number;
}

/** Writes each node's ipsec.conf as `variant` has it, from the rendered text `rendered` of each node. */
async function writeVariant(lab: Lab, rendered: Map<string, string>, variant: MeshVariant): Promise<void> {
  await Promise.all(
    lab.topology.nodes.map((n) =>
      lab.runner.run(lab.backend.onNode(n.name, ['sh', '-c', `cat > ${PATHS.ipsecConf}`]), {
        input: meshVariant(rendered.get(n.name)!, variant),
        timeoutMs: 30_000,
      }),
    ),
  );
}

/** Each node's installed ipsec.conf (what provisioning rendered). */
export async function renderedIpsecConfs(lab: Lab): Promise<Map<string, string>> {
  const read = await Promise.all(lab.topology.nodes.map(async (n) => [n.name, (await readNodeFile(lab, n.name, PATHS.ipsecConf)) ?? ''] as const));
  return new Map(read);
}

export async function measureConvergence(lab: Lab, rendered: Map<string, string>, variant: MeshVariant, timeoutMs = 120_000): Promise<Convergence> {
  const nodes = lab.topology.nodes;
  await writeVariant(lab, rendered, variant);
  await Promise.all(nodes.map((n) => lab.backend.stopStrongswan(n.name)));
  const result: Convergence = { variant, lost: 0 };
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
  if (result.sas !== undefined && (await waitFor(async () => (await meshStatus(lab)).every((p) => p.single), 30_000, 500))) result.whole = since();
  return result;
}
