// Every two mesh nodes: exactly one ESTABLISHED IKE_SA and one INSTALLED CHILD_SA with the
// planned selectors, at both ends (swanctl through each node's own vici socket). A mesh that
// has just come up may still be settling — a rekey in flight, a duplicate that strongSwan's
// uniqueness policy deletes some seconds after a reload — so the check waits for one SA pair
// per peer up to a bound it states, and fails with what it saw then.
import { timer } from '../../clock.ts';
import { meshStatus, type PairStatus } from '../mesh.ts';
import { formatMatrix, type CheckResult } from '../report.ts';
import type { CheckTarget, CheckTopology } from '../target.ts';

/** How long a mesh may take to reach one SA pair per peer before the check fails. */
const SETTLE_S = 30;

export interface Settled {
  pairs: PairStatus[];
  /** Seconds until every pair had exactly one SA pair (undefined: not within the bound). */
  seconds?: number;
}

/**
 * Polls the mesh until every pair is up with one IKE_SA and one CHILD_SA at each end, or
 * `boundS` passed. `among` limits that to some pairs (a recovery is judged on the pairs that
 * were whole before; a pair that was already broken is the tunnels check's finding).
 */
export async function settleMesh(lab: CheckTarget, boundS = SETTLE_S, withConns = false, among: (p: PairStatus) => boolean = () => true): Promise<Settled> {
  const since = timer();
  for (;;) {
    const pairs = (await meshStatus(lab, withConns)).filter(among);
    if (pairs.every((p) => p.single)) return { pairs, seconds: since() };
    if (since() >= boundS) return { pairs };
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The problems of the pairs that did not settle to one SA pair per peer. */
export function notSingle(s: Settled): string[] {
  return s.pairs.filter((p) => !p.single).map((p) => p.problem ?? `${p.a} ↔ ${p.b}: not up`);
}

export async function checkTunnels(lab: CheckTarget, boundS = SETTLE_S): Promise<{ result: CheckResult; pairs: PairStatus[] }> {
  const s = await settleMesh(lab, boundS, true);
  return { result: tunnelsResult(lab.topology, s.pairs, { seconds: s.seconds, boundS }), pairs: s.pairs };
}

/** Rows see their end of each pair: "IKE/CHILD" SA counts, ✗ when the pair is not up. */
export function tunnelsResult(t: CheckTopology, pairs: PairStatus[], settle: { seconds?: number | undefined; boundS: number }): CheckResult {
  const names = t.nodes.map((n) => n.name);
  const pairOf = (x: string, y: string) => pairs.find((p) => (p.a === x && p.b === y) || (p.a === y && p.b === x));
  const lines = formatMatrix('IKE/CHILD SAs', names, names, (row, col) => {
    if (row === col) return '·';
    const p = pairOf(row, col);
    if (!p) return '?';
    const e = p.ends[row]!;
    return `${e.ike}/${e.child}${p.up ? '' : ' ✗'}`;
  });
  const single = pairs.filter((p) => p.single).length;
  const waited =
    settle.seconds !== undefined
      ? `settled ${settle.seconds.toFixed(1)} s after the check began (bound ${settle.boundS} s)`
      : `not settled within ${settle.boundS} s`;
  return {
    name: 'tunnels',
    ok: single === pairs.length && pairs.length > 0,
    summary: `${single}/${pairs.length} node pairs with exactly one IKE_SA and one CHILD_SA at both ends; ${waited}`,
    lines,
    problems: pairs.filter((p) => !p.single).map((p) => p.problem ?? `${p.a} ↔ ${p.b}: not up`),
    values: { pairs: pairs.length, up: pairs.filter((p) => p.up).length, single, ...(settle.seconds !== undefined && { settleSeconds: settle.seconds }) },
  };
}
