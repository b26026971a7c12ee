// The node network's guard (its nftables table, /etc/kube-ipsec/node-network.nft) as the
// checks read it: how many packets each of its drop rules stopped. The guard is the last line
// of the mesh's promise — a pod packet that would have crossed the underlay in clear text ends
// there — so a count that grows while a check runs means a layer before it let one through.
import type { ClusterExec } from './target.ts';

/** Packets per drop rule of the guard, by the rule's comment ("pod source in clear", …). */
export type GuardCounts = Record<string, number>;

interface NftJson {
  nftables?: { rule?: { comment?: string; expr?: { counter?: { packets: number } }[] } }[];
}

/** `nft -j list chain ip kube-ipsec guard` (or inbound) → the counters of its commented rules. */
export function parseGuardCounts(json: string): GuardCounts {
  const out: GuardCounts = {};
  for (const item of (JSON.parse(json) as NftJson).nftables ?? []) {
    const rule = item.rule;
    const counter = rule?.expr?.find((e) => e.counter)?.counter;
    if (rule?.comment && counter) out[rule.comment] = (out[rule.comment] ?? 0) + counter.packets;
  }
  return out;
}

/**
 * The counters of a guard chain on a node: `guard` (what would have left it in clear) or its
 * mirror `inbound` (what arrived in clear). Undefined: the node has no such chain, e.g. its
 * node network is not up.
 */
export async function readGuard(lab: ClusterExec, node: string, chain: 'guard' | 'inbound' = 'guard'): Promise<GuardCounts | undefined> {
  const r = await lab.runner.run(lab.backend.onNode(node, ['nft', '-j', 'list', 'chain', 'ip', 'kube-ipsec', chain]), { allowFail: true, timeoutMs: 30_000 });
  return r.code === 0 ? parseGuardCounts(r.stdout) : undefined;
}

/** Packets dropped between two readings, in all (a reading that is missing counts as nothing). */
export function guardDropped(before: GuardCounts | undefined, after: GuardCounts | undefined): number {
  if (!after) return 0;
  return Object.entries(after).reduce((sum, [k, n]) => sum + Math.max(0, n - (before?.[k] ?? 0)), 0);
}
