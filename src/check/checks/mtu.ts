// The pod MTU keeps its promise: the largest don't-fragment ping payload that crosses the
// tunnel from a pod is exactly the rendered pod MTU minus the IPv4 and ICMP headers — no
// smaller (wasted), no larger (dropped in the tunnel, pods stuck on PMTU discovery).
import { nodesWithPods, type CheckTarget, type CheckPod } from '../target.ts';
import { nodeConflist } from '../pods.ts';
import { ping, type Reachability } from '../probe.ts';
import type { CheckResult } from '../report.ts';

const ICMP_ECHO_HEADERS = 28; // IPv4 20 + ICMP 8

/**
 * Largest n in [0, max] with probe(n) true, assuming probe is monotone (true up to some
 * size); starts at `guess` (the promised size), so a kept promise costs two probes.
 */
export async function largestPassing(probe: (n: number) => Promise<boolean>, guess: number, max: number): Promise<number> {
  let lo: number;
  let hi: number;
  if (await probe(guess)) {
    if (guess >= max || !(await probe(guess + 1))) return guess;
    [lo, hi] = [guess + 1, max + 1];
  } else {
    [lo, hi] = [-1, guess];
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await probe(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export async function checkMtu(lab: CheckTarget, reach: Reachability): Promise<CheckResult> {
  const t = lab.topology;
  const ipOf = (p: CheckPod) => lab.pods[p.ns]?.ip ?? '';
  // The first pod → remote pod path that carries a plain ping at all (a broken path is the pings check's finding).
  const withPods = nodesWithPods(t);
  const paths = withPods.flatMap((from) => withPods.filter((to) => to !== from).map((to) => ({ from, src: from.pods[0]!, dst: to.pods[0]! })));
  let path: (typeof paths)[number] | undefined;
  for (const p of paths) {
    if (await reach.reaches(p.src.ns, ipOf(p.dst))) {
      path = p;
      break;
    }
  }
  if (!path) {
    const why = paths.length ? 'no pod reaches a pod on another node at all (see pings)' : 'the lab has pods on fewer than two nodes: nothing crosses a tunnel';
    return { name: 'mtu', ok: false, summary: 'not measurable', problems: [why] };
  }
  const { from, src, dst } = path;
  const dstIp = ipOf(dst);
  const conflistMtu = Number((JSON.parse(await nodeConflist(lab, from.name)) as { plugins: { mtu?: number }[] }).plugins[0]?.mtu ?? 1500);
  const link = await lab.runner.run(lab.backend.inNs(src.ns, ['ip', '-j', 'link', 'show', 'dev', 'eth0']));
  const linkMtu = Number((JSON.parse(link.stdout) as { mtu: number }[])[0]?.mtu);
  const promised = conflistMtu - ICMP_ECHO_HEADERS;
  const max = t.underlayMtu - ICMP_ECHO_HEADERS;
  // A refusal (local "message too long", a router's "Frag needed") is final; a lost reply gets a second try.
  const df = (ns: string) => async (n: number) => {
    for (let i = 0; i < 2; i++) {
      const r = await ping(lab, ns, dstIp, { size: n, dontFragment: true, wait: 1 });
      if (r.ok) return true;
      if (r.why && /too long|Frag needed/i.test(r.why)) return false;
    }
    return false;
  };
  const [podMax, tunnelMax] = await Promise.all([largestPassing(df(src.ns), promised, max), largestPassing(df(from.ns), promised, max)]);
  return mtuResult({ from: from.name, pod: src.name, dst: dst.name, conflistMtu, linkMtu, podMax, tunnelMax });
}

export interface MtuMeasure {
  from: string;
  pod: string;
  dst: string;
  /** mtu of the node's rendered conflist. */
  conflistMtu: number;
  /** mtu of the pod's eth0 as the plugin made it. */
  linkMtu: number;
  /** Largest DF payload from the pod that got an answer. */
  podMax: number;
  /** Largest DF payload from the node itself (not limited by the pod's MTU): what the tunnel carries. */
  tunnelMax: number;
}

export function mtuResult(m: MtuMeasure): CheckResult {
  const promised = m.conflistMtu - ICMP_ECHO_HEADERS;
  const problems: string[] = [];
  if (m.linkMtu !== m.conflistMtu)
    problems.push(`${m.pod}'s eth0 has mtu ${m.linkMtu}, but ${m.from}'s conflist says ${m.conflistMtu}: the plugin did not apply the rendered MTU`);
  if (m.podMax < promised) {
    problems.push(
      `pods are promised ${promised}-byte DF payloads (pod MTU ${m.conflistMtu}) but only ${m.podMax} bytes cross the tunnel ${m.pod} → ${m.dst}: the pod MTU is larger than the tunnel carries (${m.tunnelMax} + ${ICMP_ECHO_HEADERS}), so bigger packets are dropped`,
    );
  } else if (m.podMax > promised) {
    problems.push(`${m.pod} sent ${m.podMax}-byte DF payloads although its MTU ${m.conflistMtu} allows ${promised}`);
  }
  return {
    name: 'mtu',
    ok: problems.length === 0,
    summary: `largest DF payload ${m.pod} → ${m.dst}: ${m.podMax} bytes; pod MTU ${m.conflistMtu} promises ${promised}; from the node the tunnel carries ${m.tunnelMax}`,
    problems,
    values: { podMtu: m.conflistMtu, linkMtu: m.linkMtu, promised, podMax: m.podMax, tunnelMax: m.tunnelMax },
  };
}
