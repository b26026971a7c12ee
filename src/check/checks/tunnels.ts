// Every two mesh nodes: ≥ 1 ESTABLISHED IKE_SA and ≥ 1 INSTALLED CHILD_SA with the planned
// pod subnets, at both ends (swanctl through each node's own vici socket).
import type { CheckTarget } from '../target.ts';
import { meshStatus, type PairStatus } from '../mesh.ts';
import { formatMatrix, type CheckResult } from '../report.ts';
import type { CheckTopology } from '../target.ts';

export async function checkTunnels(lab: CheckTarget): Promise<{ result: CheckResult; pairs: PairStatus[] }> {
  const pairs = await meshStatus(lab, true);
  return { result: tunnelsResult(lab.topology, pairs), pairs };
}

/** Rows see their end of each pair: "IKE/CHILD" SA counts, ✗ when the pair is not up. */
export function tunnelsResult(t: CheckTopology, pairs: PairStatus[]): CheckResult {
  const names = t.nodes.map((n) => n.name);
  const pairOf = (x: string, y: string) => pairs.find((p) => (p.a === x && p.b === y) || (p.a === y && p.b === x));
  const lines = formatMatrix('IKE/CHILD SAs', names, names, (row, col) => {
    if (row === col) return '·';
    const p = pairOf(row, col);
    if (!p) return '?';
    const e = p.ends[row]!;
    return `${e.ike}/${e.child}${p.up ? '' : ' ✗'}`;
  });
  const up = pairs.filter((p) => p.up).length;
  return {
    name: 'tunnels',
    ok: up === pairs.length,
    summary: `${up}/${pairs.length} node pairs with IKE_SA and CHILD_SA up at both ends`,
    lines,
    problems: pairs.filter((p) => !p.up).map((p) => p.problem ?? `${p.a} ↔ ${p.b}: not up`),
    values: { pairs: pairs.length, up },
  };
}
