// Which pod subnet each node owns. A node's subnet is a function of its own entry only
// (explicit `podSubnet`, else master → #0, else the number its name ends with:
// minion3 → #3 → 10.240.3.0/24), so adding, removing or reordering nodes never moves
// another node's pods.
import type { NodeConfig } from '../config/defaults.ts';
import { cidr, nthSubnet, type Cidr } from './ipv4.ts';

type SubnetSource = 'explicit' | 'master' | 'name';

export type SubnetChoice =
  | { ok: true; subnet: Cidr; source: SubnetSource; index?: number }
  | { ok: false; reason: 'no-number' | 'out-of-range'; index?: number };

/** master → 0; `<name><N>` → N; otherwise undefined. */
function subnetIndexFromName(node: Pick<NodeConfig, 'name' | 'role'>): number | undefined {
  if (node.role === 'master') return 0;
  const m = /([0-9]+)$/.exec(node.name);
  return m ? Number(m[1]) : undefined;
}

export function chooseSubnet(node: Pick<NodeConfig, 'name' | 'role' | 'podSubnet'>, podCidr: Cidr, prefix: number): SubnetChoice {
  if (node.podSubnet !== undefined) return { ok: true, subnet: cidr(node.podSubnet), source: 'explicit' };
  const index = subnetIndexFromName(node);
  if (index === undefined) return { ok: false, reason: 'no-number' };
  if (index >= 2 ** (prefix - podCidr.prefix)) return { ok: false, reason: 'out-of-range', index };
  return { ok: true, subnet: nthSubnet(podCidr, prefix, index), source: node.role === 'master' ? 'master' : 'name', index };
}
