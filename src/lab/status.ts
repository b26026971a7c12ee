// `lab status`: what runs, read from the running lab (not from what `up` meant to do):
// strongSwan per node and its tunnels, each pod's live address and MTU, and the node's own
// IPAM store (in the node's /var, where its plugin wrote it).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStore } from '../cni/ipam/format.ts';
import { PATHS } from '../plan/paths.ts';
import type { Lab } from './lab.ts';
import { meshStatus, type PairStatus } from './mesh.ts';
import { inNetns } from './network.ts';
import { writtenPath } from './node-view.ts';
import { nodeConflist } from './pods.ts';
import { isOurs } from './procs.ts';
import { formatMatrix } from './report.ts';
import { strongswanProcesses } from './strongswan.ts';

export interface PodStatus {
  name: string;
  ns: string;
  /** Address on eth0 now ('' if the interface is gone). */
  ip: string;
  mtu?: number;
  /** What the node's IPAM store holds for this pod's container. */
  stored?: string;
}

export interface NodeStatus {
  name: string;
  role: string;
  ip: string;
  podSubnet: string;
  /** PIDs of starter and charon that are alive and ours. */
  strongswan: number[];
  pods: PodStatus[];
  /** Allocations in the node's IPAM store. */
  allocations: number;
}

export interface LabStatus {
  prefix: string;
  stateDir: string;
  espMode: string;
  phase: string;
  convergedIn?: number;
  upstream: string;
  nodes: NodeStatus[];
  pairs: PairStatus[];
}

export async function labStatus(lab: Lab): Promise<LabStatus> {
  const t = lab.topology;
  const nodes = await Promise.all(
    t.nodes.map(async (n): Promise<NodeStatus> => {
      const view = lab.views.get(n.name)!;
      const strongswan = strongswanProcesses(view)
        .filter((p) => isOurs({ ...p, ns: n.ns, role: 'strongswan', what: '' }))
        .map((p) => p.pid);
      const store = view.holder ? readIpamStore(lab, n.name) : {};
      const pods = await Promise.all(
        n.pods.map(async (p): Promise<PodStatus> => {
          const r = await lab.runner.run(inNetns(p.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']), { allowFail: true });
          let ip = '';
          let mtu: number | undefined;
          try {
            const link = (JSON.parse(r.stdout) as { mtu: number; addr_info: { local: string }[] }[])[0];
            ip = link?.addr_info[0]?.local ?? '';
            mtu = link?.mtu;
          } catch {
            // namespace or interface gone
          }
          const stored = Object.entries(store).find(([, a]) => a.containerId === p.containerId)?.[0];
          return { name: p.name, ns: p.ns, ip, ...(mtu !== undefined && { mtu }), ...(stored && { stored }) };
        }),
      );
      return { name: n.name, role: n.role, ip: n.ip, podSubnet: n.podSubnet, strongswan, pods, allocations: Object.keys(store).length };
    }),
  );
  const pairs = await meshStatus(lab);
  const d = lab.state.data;
  return {
    prefix: d.prefix,
    stateDir: lab.stateDir,
    espMode: d.espMode,
    phase: d.phase,
    ...(d.convergedIn !== undefined && { convergedIn: d.convergedIn }),
    upstream: t.upstream.ip,
    nodes,
    pairs,
  };
}

/** The node's IPAM store, read where the node's plugin wrote it (its /var, through the view's upper dir). */
function readIpamStore(lab: Lab, node: string): Record<string, { containerId: string }> {
  const view = lab.views.get(node)!;
  try {
    const network = (JSON.parse(nodeConflist(view)) as { name: string }).name;
    const path = writtenPath(view, join(PATHS.cniDataDir, `${network}.json`));
    return parseStore(readFileSync(path, 'utf8'), path, network).allocations;
  } catch {
    return {};
  }
}

export function formatStatus(s: LabStatus): string {
  const out = [
    `lab ${s.prefix} (${s.phase}; state ${s.stateDir}): ESP in the ${s.espMode}, upstream ${s.upstream}` +
      (s.convergedIn !== undefined ? `, mesh converged ${s.convergedIn.toFixed(2)} s after start` : ''),
    '',
  ];
  const rows = s.nodes.map((n) => [n.name, n.role, n.ip, n.podSubnet, n.strongswan.length ? `running (pids ${n.strongswan.join(' ')})` : 'STOPPED', `${n.allocations} IPs`]);
  const head = ['node', 'role', 'underlay', 'pod subnet', 'strongSwan', 'IPAM store'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) out.push(r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd());
  out.push('', 'tunnels (IKE_SAs/CHILD_SAs at the row node):');
  const names = s.nodes.map((n) => n.name);
  const pair = (x: string, y: string) => s.pairs.find((p) => (p.a === x && p.b === y) || (p.a === y && p.b === x));
  out.push(
    ...formatMatrix('', names, names, (r, c) => {
      if (r === c) return '·';
      const p = pair(r, c);
      const e = p?.ends[r];
      return e ? `${e.ike}/${e.child}${p!.up ? '' : ' ✗'}` : '?';
    }).map((l) => `  ${l}`),
  );
  out.push('', 'pods:');
  for (const n of s.nodes) {
    for (const p of n.pods) out.push(`  ${p.name.padEnd(16)} ${(p.ip || 'no eth0').padEnd(15)} mtu ${p.mtu ?? '-'}  netns ${p.ns}${p.stored && p.stored !== p.ip ? `  (store says ${p.stored})` : ''}`);
  }
  return out.join('\n') + '\n';
}
