// Node traffic, with ipsec.nodeEncryption: node↔node traffic (kubelet, apiserver, etcd, a pod
// to another node's address) is ESP too, and what comes from outside the cluster still
// reaches the nodes. Every node connects over TCP, from its own address, to a listener bound
// to every other node's address; the underlay capture meanwhile must hold no clear-text packet
// between two node addresses but IKE. A machine outside the cluster (the labs' upstream)
// connects to the same listeners, and to sshd where the nodes run one: those stay in clear,
// as they must — only the mesh is encrypted.
import { captureUnderlay, classifyCapture, clearTextProblems, flowOf } from '../capture.ts';
import { mapLimit, tcpAskUntil, tokenListener, type TcpOutcome } from '../probe.ts';
import type { CheckResult } from '../report.ts';
import type { Background, CheckNode, CheckTarget, CheckTopology } from '../target.ts';
import { selectorsOf } from '../mesh.ts';
import { addressBook } from './traffic.ts';

/** The port of the check's listeners on the node addresses. */
const NODE_PORT = 8090;

/** Whether the mesh carries node addresses (ipsec.nodeEncryption): a node's own address is among its selectors. */
const encryptsNodes = (n: CheckNode): boolean => selectorsOf(n).includes(`${n.ip}/32`);

export function nodeTrafficNotApplicable(t: CheckTopology): string | undefined {
  return t.nodes.every(encryptsNodes) ? undefined : 'ipsec.nodeEncryption is off: node-to-node traffic is not part of the mesh (only pod traffic is)';
}

export interface NodeProbe {
  /** Namespace the client runs in, and who it is. */
  ns: string;
  from: string;
  to: CheckNode;
  port: number;
  bind?: string;
  /** What answers: the node's name (the check's listener) or an SSH banner. */
  expect: RegExp;
  outside: boolean;
}

export function nodeProbes(t: CheckTopology, withSshd: boolean): NodeProbe[] {
  const probes: NodeProbe[] = [];
  for (const a of t.nodes) {
    for (const b of t.nodes.filter((x) => x !== a))
      probes.push({ ns: a.ns, from: a.name, to: b, port: NODE_PORT, bind: a.ip, expect: new RegExp(`^${b.name}$`), outside: false });
  }
  if (t.upstream) {
    for (const b of t.nodes) {
      probes.push({ ns: t.upstream.ns, from: 'upstream', to: b, port: NODE_PORT, expect: new RegExp(`^${b.name}$`), outside: true });
      if (withSshd) probes.push({ ns: t.upstream.ns, from: 'upstream', to: b, port: 22, expect: /^SSH-2\.0-/, outside: true });
    }
  }
  return probes;
}

export async function checkNodeTraffic(lab: CheckTarget): Promise<CheckResult> {
  const t = lab.topology;
  const probes = nodeProbes(t, lab.backend.systemd);
  const listeners: Background[] = [];
  let answers: TcpOutcome[] = [];
  let lines: string[] = [];
  try {
    for (const n of t.nodes) listeners.push(await tokenListener(lab, n.ns, n.name, NODE_PORT, n.ip));
    const capture = await captureUnderlay(lab, 'node-traffic');
    try {
      // An SSH server sends its banner first, then waits for ours until the read times out: its first line is the answer.
      answers = await mapLimit(probes, 8, (p) =>
        tcpAskUntil(lab, p.ns, p.to.ip, p.port, (text) => p.expect.test(text.split('\n')[0]!), p.bind ? { bind: p.bind } : {}),
      );
    } finally {
      lines = await capture.stop();
    }
  } finally {
    await Promise.all(listeners.map((l) => l.stop().catch(() => '')));
  }
  return nodeTrafficResult(t, probes, answers, lines, addressBook(lab));
}

export function nodeTrafficResult(t: CheckTopology, probes: NodeProbe[], answers: TcpOutcome[], lines: string[], book: Map<string, string>): CheckResult {
  const nodeIps = new Set(t.nodes.map((n) => n.ip));
  const capture = classifyCapture(lines, t.podCidr);
  // Between two node addresses only IPsec may travel: ESP, and IKE itself.
  const clearNodes = capture.otherIp.filter((l) => {
    const f = flowOf(l);
    return f !== undefined && nodeIps.has(f.src) && nodeIps.has(f.dst);
  });
  const problems: string[] = [];
  const label = (p: NodeProbe) => `${p.from}${p.bind ? ` ${p.bind}` : ''} → ${p.to.name} ${p.to.ip}:${p.port}`;
  const answered = probes.map((_, i) => answers[i]?.text !== undefined);
  probes.forEach((p, i) => {
    if (answered[i]) return;
    const got = `${answers[i]?.tries ?? 0} attempts unanswered (${answers[i]?.why ?? 'no connection'})`;
    problems.push(
      p.outside
        ? `${label(p)}: ${got}: a client outside the cluster must still reach the node (nodeEncryption covers only the mesh's own addresses)`
        : `${label(p)}: ${got}: node-to-node traffic must flow through the tunnel between ${p.from} and ${p.to.name}`,
    );
  });
  if (clearNodes.length) {
    const f = flowOf(clearNodes[0]!)!;
    problems.push(
      `${clearNodes.length} clear-text packets between node addresses on the underlay (e.g. ${f.src} → ${f.dst} ${f.proto}: \`${clearNodes[0]}\`): with ipsec.nodeEncryption only ESP and IKE may pass between nodes`,
    );
  }
  problems.push(...clearTextProblems(capture.clearPod, book));
  if (!capture.esp) problems.push('no ESP on the underlay while the nodes talked: the capture saw no encrypted traffic at all');
  const inside = probes.filter((p) => !p.outside);
  const okInside = probes.filter((p, i) => !p.outside && answered[i]).length;
  const outside = probes.filter((p) => p.outside);
  const okOutside = probes.filter((p, i) => p.outside && answered[i]).length;
  return {
    name: 'node-traffic',
    ok: problems.length === 0 && inside.length > 0,
    summary: `${okInside}/${inside.length} node → node TCP connections (node addresses) answered, ${clearNodes.length} clear-text packets between nodes, ${capture.esp} ESP; from outside the cluster ${okOutside}/${outside.length} answered${outside.some((p) => p.port === 22) ? ' (listeners and sshd)' : ''}`,
    problems,
    values: {
      inside: inside.length,
      insideAnswered: okInside,
      outside: outside.length,
      outsideAnswered: okOutside,
      clearNodes: clearNodes.length,
      esp: capture.esp,
    },
  };
}
