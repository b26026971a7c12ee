// `lab status`: what runs, read from the running lab (not from what `up` meant to do):
// strongSwan per node and its tunnels, each pod's live address and MTU, and the node's own
// IPAM store (in the node's /var, where its plugin wrote it).
import type { Lab } from './lab.ts';
import { meshStatus, type PairStatus } from '../check/mesh.ts';
import { readIpamStore } from '../check/pods.ts';
import { isOurs } from './procs.ts';
import { formatMatrix } from '../check/report.ts';

interface PodStatus {
  name: string;
  ns: string;
  /** Address on eth0 now ('' if the interface is gone). */
  ip: string;
  mtu?: number;
  /** What the node's IPAM store holds for this pod's container. */
  stored?: string;
}

interface NodeStatus {
  name: string;
  role: string;
  ip: string;
  podSubnet: string;
  /** PIDs of starter and charon that are alive and ours (in a VM: the unit's main PID, inside it). */
  strongswan: number[];
  /** In words: "running (pids …)" or "STOPPED" in namespaces, the unit's state in VMs. */
  strongswanState: string;
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
  /** VM lab: each VM's qemu (running or not), address and how it was booted. */
  vms?: { node: string; pid?: number; running: boolean; mgmtIp: string; bootSeconds?: number }[];
  accel?: string;
}

export async function labStatus(lab: Lab): Promise<LabStatus> {
  const t = lab.topology;
  const nodes = await Promise.all(
    t.nodes.map(async (n): Promise<NodeStatus> => {
      const strongswan = await lab.backend.strongswanState(n.name);
      const store: Record<string, { containerId: string }> = n.pods.length ? await readIpamStore(lab, n.name).catch(() => ({})) : {};
      const pods = await Promise.all(
        n.pods.map(async (p): Promise<PodStatus> => {
          const r = await lab.runner.run(lab.backend.inNs(p.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']), { allowFail: true });
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
      return {
        name: n.name,
        role: n.role,
        ip: n.ip,
        podSubnet: n.podSubnet,
        strongswan: strongswan.pids,
        strongswanState: strongswan.detail,
        pods,
        allocations: Object.keys(store).length,
      };
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
    ...(d.vm && {
      accel: `${d.vm.accel.accel}, ${d.vm.layout.nodes[0]?.memoryMb ?? '?'} MB per VM`,
      vms: d.vm.layout.nodes.map((v) => {
        const p = d.processes.find((x) => x.role === 'vm' && x.node === v.name);
        return {
          node: v.name,
          ...(p && { pid: p.pid }),
          running: p !== undefined && isOurs(p),
          mgmtIp: v.mgmtIp,
          ...(d.vm!.bootSeconds[v.name] !== undefined && { bootSeconds: d.vm!.bootSeconds[v.name] }),
        };
      }),
    }),
  };
}

export function formatStatus(s: LabStatus): string {
  const out = [
    `lab ${s.prefix} (${s.phase}; state ${s.stateDir}): ESP in the ${s.espMode}, upstream ${s.upstream}` +
      (s.convergedIn !== undefined ? `, mesh converged ${s.convergedIn.toFixed(2)} s after start` : ''),
    '',
  ];
  if (s.vms) {
    out.push(`VMs (${s.accel}):`);
    for (const v of s.vms)
      out.push(
        `  ${v.node.padEnd(10)} qemu ${v.running ? `pid ${v.pid}` : 'NOT RUNNING'}, ssh root@${v.mgmtIp}${v.bootSeconds !== undefined ? `, booted to sshd in ${v.bootSeconds.toFixed(1)} s` : ''}`,
      );
    out.push('');
  }
  const rows = s.nodes.map((n) => [n.name, n.role, n.ip, n.podSubnet, n.strongswanState, `${n.allocations} IPs`]);
  const head = ['node', 'role', 'underlay', 'pod subnet', 'strongSwan', 'IPAM store'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows])
    out.push(
      r
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
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
    for (const p of n.pods)
      out.push(
        `  ${p.name.padEnd(16)} ${(p.ip || 'no eth0').padEnd(15)} mtu ${p.mtu ?? '-'}  netns ${p.ns}${p.stored && p.stored !== p.ip ? `  (store says ${p.stored})` : ''}`,
      );
  }
  return out.join('\n') + '\n';
}
