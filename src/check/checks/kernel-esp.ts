// Kernel ESP on every node: for each peer, the kernel holds an ESP security association in
// tunnel mode with AES-GCM (rfc4106) in each direction, and output policies send the node's
// pod subnet to the peer's through it — strongSwan negotiated, the kernel encrypts (no
// userspace ESP, no TUN). The capture check sees the same on the wire as raw ESP (protocol
// 50), never UDP 4500.
import type { CheckTarget } from '../target.ts';
import { mapLimit } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import type { CheckNode, CheckTopology } from '../target.ts';

export interface XfrmState {
  src: string;
  dst: string;
  proto: string;
  mode: string;
  aead?: string;
  bytes: number;
}

export interface XfrmPolicy {
  src: string;
  dst: string;
  dir: string;
  tmplSrc?: string;
  tmplDst?: string;
}

/** `ip -s xfrm state` as data. */
export function parseXfrmStates(text: string): XfrmState[] {
  const out: XfrmState[] = [];
  for (const block of text.split(/\n(?=src )/)) {
    const head = /^src (\S+) dst (\S+)/.exec(block);
    const proto = /proto (\S+) spi \S+(?: reqid \S+)? mode (\S+)/.exec(block);
    if (!head || !proto) continue;
    const aead = /\n\s*aead (\S+)/.exec(block)?.[1];
    const bytes = Number(/lifetime current:\s*\n\s*(\d+)\(bytes\)/.exec(block)?.[1] ?? 0);
    out.push({ src: head[1]!, dst: head[2]!, proto: proto[1]!, mode: proto[2]!, ...(aead && { aead }), bytes });
  }
  return out;
}

/** `ip xfrm policy` as data (the template's tunnel endpoints). */
export function parseXfrmPolicies(text: string): XfrmPolicy[] {
  const out: XfrmPolicy[] = [];
  for (const block of text.split(/\n(?=src )/)) {
    const head = /^src (\S+) dst (\S+)/.exec(block);
    const dir = /\n\s*dir (\S+)/.exec(block)?.[1];
    if (!head || !dir) continue;
    const tmpl = /tmpl src (\S+) dst (\S+)/.exec(block);
    out.push({ src: head[1]!, dst: head[2]!, dir, ...(tmpl && { tmplSrc: tmpl[1]!, tmplDst: tmpl[2]! }) });
  }
  return out;
}

export interface NodeXfrm {
  node: CheckNode;
  states: XfrmState[];
  policies: XfrmPolicy[];
  /** An ipsec0 TUN (strongSwan's userspace ESP) exists. */
  libipsec: boolean;
}

export function kernelEspProblems(t: CheckTopology, x: NodeXfrm): string[] {
  const problems: string[] = [];
  const n = x.node;
  if (x.libipsec)
    problems.push(`${n.name} has strongSwan's userspace ESP device ipsec0: ESP runs in charon, not the kernel (strongswan.conf loads kernel-libipsec)`);
  for (const peer of t.nodes.filter((p) => p !== n)) {
    for (const [src, dst] of [
      [n.ip, peer.ip],
      [peer.ip, n.ip],
    ] as const) {
      const sa = x.states.filter((s) => s.src === src && s.dst === dst && s.proto === 'esp');
      if (!sa.length) problems.push(`${n.name}: the kernel holds no ESP SA ${src} → ${dst} (${peer.name}): the tunnel is not in the kernel`);
      else if (!sa.some((s) => s.mode === 'tunnel' && s.aead === 'rfc4106(gcm(aes))'))
        problems.push(`${n.name}: ESP SA ${src} → ${dst} is ${sa[0]!.mode}/${sa[0]!.aead ?? 'no AEAD'}, not tunnel mode with rfc4106(gcm(aes))`);
    }
    const out = x.policies.find((p) => p.dir === 'out' && p.src === n.podSubnet && p.dst === peer.podSubnet);
    if (!out)
      problems.push(
        `${n.name}: no output policy ${n.podSubnet} → ${peer.podSubnet} (${peer.name}): its pods' traffic to ${peer.name} is not sent through the tunnel`,
      );
    else if (out.tmplDst !== peer.ip)
      problems.push(`${n.name}: the policy ${n.podSubnet} → ${peer.podSubnet} tunnels to ${out.tmplDst ?? 'nowhere'}, not ${peer.ip}`);
  }
  return problems;
}

export async function checkKernelEsp(lab: CheckTarget): Promise<CheckResult> {
  const t = lab.topology;
  const read = await mapLimit(t.nodes, 3, async (node): Promise<NodeXfrm> => {
    const r = await lab.runner.run(
      lab.backend.onNode(node.name, ['sh', '-c', 'ip -s xfrm state; echo @@; ip xfrm policy; echo @@; ip -o link show dev ipsec0 2>/dev/null; true']),
      { timeoutMs: 30_000 },
    );
    const [states = '', policies = '', link = ''] = r.stdout.split('@@\n');
    return { node, states: parseXfrmStates(states), policies: parseXfrmPolicies(policies), libipsec: link.trim() !== '' };
  });
  const problems = read.flatMap((x) => kernelEspProblems(t, x));
  const lines = read.map((x) => {
    const esp = x.states.filter((s) => s.proto === 'esp');
    const kb = esp.reduce((sum, s) => sum + s.bytes, 0) / 1024;
    return `${x.node.name}: ${esp.length} kernel ESP SAs (${[...new Set(esp.map((s) => `${s.mode} ${s.aead ?? '?'}`))].join(', ')}), ${kb.toFixed(1)} KiB through them, ${x.policies.filter((p) => p.dir === 'out').length} output policies`;
  });
  return {
    name: 'kernel-esp',
    ok: problems.length === 0,
    summary: `${read.length - new Set(problems.map((p) => p.split(':')[0])).size}/${read.length} nodes encrypt in the kernel: an ESP SA (tunnel, AES-GCM) each way per peer and a policy per peer pod subnet`,
    lines,
    problems,
  };
}
