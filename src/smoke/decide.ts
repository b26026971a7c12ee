// The smoke test's decisions, pure: what counts as a Ready node and a ready pod, whether a pod
// got an address from its node's subnet, what a probe's outcome means, and — when something is
// wrong — the likely cause, read from the objects the API server returns (`kubectl get … -o
// json`). The kubectl edge (smoke.ts) only fetches those objects and runs the probes.
import type { IEndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
import type { IEvent } from 'kubernetes-models/v1/Event';
import type { INode } from 'kubernetes-models/v1/Node';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IService } from 'kubernetes-models/v1/Service';
import { PATHS, UNITS } from '../plan/paths.ts';
import { cidr, contains, parseIpv4 } from '../plan/ipv4.ts';
import type { Plan } from '../plan/plan.ts';

export interface List<T> {
  items: T[];
}

/** One line of the result table: a check on one subject (a node, a pod, a pair, an address). */
export interface Finding {
  check: 'node' | 'pod' | 'pod IP' | 'pod → pod' | 'logs' | 'exec' | 'port-forward' | 'service DNS' | 'NodePort';
  subject: string;
  ok: boolean;
  /** What was seen (PASS) or what is wrong and its likely cause (FAIL). */
  detail: string;
}

const pass = (check: Finding['check'], subject: string, detail: string): Finding => ({ check, subject, ok: true, detail });
const fail = (check: Finding['check'], subject: string, detail: string): Finding => ({ check, subject, ok: false, detail });

// --- nodes -----------------------------------------------------------------------------------

/**
 * Every node that runs pods must be registered under its name, with its cluster.yaml address as
 * InternalIP, and Ready=True. (The master runs no kubelet: it is not a Node.)
 */
export function nodeFindings(plan: Plan, nodes: List<INode>): Finding[] {
  return plan.minions.map((m) => {
    const node = nodes.items.find((n) => n.metadata?.name === m.name);
    if (!node)
      return fail(
        'node',
        m.name,
        `not registered: ${m.name}'s kubelet has not reached the API server (on ${m.name}: systemctl status ${UNITS.kubelet}; journalctl -u ${UNITS.kubelet})`,
      );
    const internal = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (internal !== undefined && internal !== m.ip)
      return fail('node', m.name, `registered with InternalIP ${internal}, but cluster.yaml gives ${m.name} ${m.ip} (the kubelet's --node-ip)`);
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True')
      return pass(
        'node',
        m.name,
        `Ready (${node.status?.nodeInfo?.kubeletVersion ?? 'kubelet'}, ${node.status?.nodeInfo?.containerRuntimeVersion ?? 'runtime'})`,
      );
    return fail('node', m.name, notReadyCause(m.name, ready));
  });
}

function notReadyCause(name: string, ready: { status: string; reason?: string; message?: string } | undefined): string {
  if (!ready) return `no Ready condition yet: the kubelet on ${name} has not posted its status`;
  const said = `${ready.reason ?? 'NotReady'}: ${ready.message ?? ''}`.trim();
  if (ready.status === 'Unknown')
    return `Ready=Unknown (${said}): the kubelet on ${name} stopped posting its status; it is down or cannot reach the API server`;
  if (/cni|network plugin|NetworkReady=false|network is not ready/i.test(ready.message ?? '')) {
    return `NotReady (${said}): the runtime on ${name} has no pod network; check ${PATHS.cniConflist} and ${PATHS.cniPlugin} there (provision ${name})`;
  }
  if (/container runtime|PLEG|runtime is down/i.test(ready.message ?? ''))
    return `NotReady (${said}): the container runtime on ${name} is not answering (systemctl status of its runtime units)`;
  return `NotReady (${said})`;
}

// --- pods ------------------------------------------------------------------------------------

export function podReady(pod: IPod): boolean {
  return pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Why a pod that should be ready is not, from its status and its events (newest last). */
export function podProblem(pod: IPod, events: IEvent[]): string {
  const name = pod.metadata?.name ?? '?';
  const node = pod.spec?.nodeName;
  const mine = events.filter((e) => e.involvedObject.name === name && e.involvedObject.kind === 'Pod');
  const last = (reason: RegExp) => [...mine].reverse().find((e) => reason.test(e.reason ?? ''));
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (!node || scheduled?.status === 'False') {
    return `not scheduled${scheduled?.message ? `: ${scheduled.message}` : ''} (its node must be Ready and match nodeSelector ${JSON.stringify(pod.spec?.nodeSelector ?? {})})`;
  }
  const sandbox = last(/^FailedCreatePodSandBox$/);
  const container = pod.status?.containerStatuses?.[0];
  const waiting = container?.state?.waiting;
  if (waiting && /^(ErrImagePull|ImagePullBackOff|ErrImageNeverPull)$/.test(waiting.reason ?? '')) {
    const image = pod.spec?.containers[0]?.image ?? '?';
    return `${waiting.reason} on ${node}: ${image} cannot be pulled (${(waiting.message ?? '').trim() || 'no message'}); without a registry, put its archive in binaries.dir and provision ${node}`;
  }
  if (sandbox && (!container || waiting?.reason === 'ContainerCreating')) {
    return (
      `stuck in ContainerCreating on ${node}: the pod network could not be set up: ${sandbox.message ?? ''}`.trim() +
      ` (the CNI plugin's log on ${node}: ${PATHS.cniLogFile})`
    );
  }
  if (waiting?.reason === 'CrashLoopBackOff')
    return `its container keeps exiting on ${node} (CrashLoopBackOff): kubectl -n ${pod.metadata?.namespace} logs ${name} --previous`;
  if (waiting) return `waiting on ${node}: ${waiting.reason ?? ''}${waiting.message ? ` (${waiting.message})` : ''}`;
  if (pod.status?.phase === 'Running') {
    const probe = last(/^Unhealthy$/);
    return `running on ${node} but not Ready${probe ? `: ${probe.message}` : ''} (its readiness probe on port 8080 fails)`;
  }
  return `${pod.status?.phase ?? 'no status'} on ${node}${mine.length ? `: ${mine[mine.length - 1]!.reason} ${mine[mine.length - 1]!.message ?? ''}`.trimEnd() : ''}`;
}

/** The pod's address must come from its node's pod subnet (the plan's, in the node's conflist). */
export function podIpFinding(plan: Plan, node: string, pod: IPod): Finding {
  const subject = `${pod.metadata?.name} on ${node}`;
  const ip = pod.status?.podIP;
  const subnet = plan.nodes.find((n) => n.name === node)?.podSubnet;
  if (!subnet) return fail('pod IP', subject, `${node} is not a node of cluster.yaml`);
  if (!ip) return fail('pod IP', subject, 'has no IP address');
  const addr = parseIpv4(ip);
  if (addr === undefined) return fail('pod IP', subject, `has a non-IPv4 address ${ip}`);
  if (!contains(cidr(subnet), addr)) {
    const owner = plan.nodes.find((n) => contains(cidr(n.podSubnet), addr));
    return fail(
      'pod IP',
      subject,
      `${ip} is outside ${node}'s pod subnet ${subnet}${owner ? ` (it is ${owner.name}'s)` : ''}: the runtime on ${node} does not use ${PATHS.cniConflist} as rendered`,
    );
  }
  return pass('pod IP', subject, `${ip} in ${subnet}`);
}

// --- probes ----------------------------------------------------------------------------------

/** curl's exit status and output for one request (curl -sS -m N http://…/hostname). */
export interface HttpProbe {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** curl's exit codes that name a cause (curl(1), EXIT CODES). */
const CURL: Record<number, string> = {
  6: 'the name did not resolve',
  7: 'connection refused',
  28: 'no answer before the timeout',
  52: 'the server closed the connection without a reply',
  56: 'the connection was reset',
};

/** What an HTTP probe tells: the pod names that answer /hostname are what is expected. */
export function probeOutcome(probe: HttpProbe, expected: readonly string[]): { ok: true; answer: string } | { ok: false; why: string; code: number | null } {
  const answer = probe.stdout.trim();
  if (probe.code === 0 && expected.includes(answer)) return { ok: true, answer };
  if (probe.code === 0)
    return { ok: false, why: `answered "${answer.slice(0, 60)}", expected ${expected.length === 1 ? expected[0] : `one of ${expected.join(', ')}`}`, code: 0 };
  const known = probe.code !== null ? CURL[probe.code] : undefined;
  return { ok: false, why: known ?? `curl exited ${probe.code}: ${probe.stderr.trim().split('\n').pop() ?? ''}`, code: probe.code };
}

/** Pod on `from` → pod on `to`, by pod IP: this is the path across the IPsec tunnel from↔to. */
export function podToPodFinding(from: string, to: string, targetIp: string, probe: HttpProbe, targetPod: string): Finding {
  const subject = `${from} → ${to}`;
  const o = probeOutcome(probe, [targetPod]);
  if (o.ok) return pass('pod → pod', subject, `http://${targetIp}:8080 answered ${o.answer}`);
  const cause =
    o.code === 28
      ? `: the tunnel ${from}↔${to} may be down or dropping pod traffic (npm run check; on ${from}: ipsec statusall)`
      : o.code === 7
        ? `: the packet reached ${targetIp} but nothing listens (is ${targetPod} the pod at that address?)`
        : '';
  return fail('pod → pod', subject, `http://${targetIp}:8080 from ${from}: ${o.why}${cause}`);
}

/**
 * `kubectl logs`, `exec` and `port-forward`: the API server's streams to the kubelet, through
 * the runtime (with cri-dockerd, SPDY only: the ExtendWebSocketsToKubelet gate is off).
 */
export function streamFinding(
  check: 'logs' | 'exec' | 'port-forward',
  pod: string,
  outcome: { ok: true; answer: string } | { ok: false; why: string },
): Finding {
  const cause = ': the API server reaches the kubelet on port 10250 (kubelet-client certificate, system:kubelet-api-admin) and the kubelet the runtime';
  return outcome.ok ? pass(check, pod, outcome.answer) : fail(check, pod, `${outcome.why}${cause}`);
}

// --- cluster DNS -----------------------------------------------------------------------------

/** What cluster DNS looks like from the API: the kube-dns Service, CoreDNS pods and their endpoints. */
export interface DnsState {
  service?: IService;
  pods: IPod[];
  slices: IEndpointSlice[];
  events: IEvent[];
}

/**
 * The likely reason a pod cannot resolve a Service name, given cluster DNS's state: no Service,
 * the wrong address, no CoreDNS pods, no ready endpoints (naming the nodes whose CoreDNS pods
 * are not Ready, and why), or — all of that fine — the path from the pod to them.
 */
export function dnsCause(plan: Plan, from: string, dns: DnsState): string {
  const addons = `(the add-ons are applied on ${plan.master.name} by ${UNITS.addons}: systemctl status ${UNITS.addons})`;
  if (!dns.service) return `no kube-dns Service in kube-system ${addons}`;
  if (dns.service.spec?.clusterIP !== plan.network.clusterDns) {
    return `kube-dns has clusterIP ${dns.service.spec?.clusterIP}, but kubelets send pods to ${plan.network.clusterDns} (network.clusterDns)`;
  }
  if (!dns.pods.length) return `no CoreDNS pods: the coredns Deployment in kube-system has none running ${addons}`;
  const ready = dns.slices.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready === true);
  if (!ready.length) {
    const notReady = dns.pods.filter((p) => !podReady(p));
    const where = [...new Set(notReady.map((p) => p.spec?.nodeName ?? 'no node'))].join(', ');
    const why = notReady[0] ? `; ${notReady[0].metadata?.name}: ${podProblem(notReady[0], dns.events)}` : '';
    return `no endpoints: CoreDNS pods not Ready on ${where || 'any node'}${why}`;
  }
  const at = ready.map((e) => `${e.addresses[0]}${e.nodeName ? ` on ${e.nodeName}` : ''}`).join(', ');
  return `CoreDNS has ready endpoints (${at}), but queries from ${from} to ${plan.network.clusterDns} get no answer: kube-proxy on ${from} (the Service's rules) or pod traffic from ${from} to those nodes (pod → pod above)`;
}

/** A pod on `node` reaching the Service by its DNS name: resolution, the VIP, an endpoint. */
export function serviceDnsFinding(plan: Plan, node: string, name: string, probe: HttpProbe, podNames: readonly string[], dns: DnsState): Finding {
  const o = probeOutcome(probe, podNames);
  if (o.ok) return pass('service DNS', node, `http://${name} answered ${o.answer}`);
  if (o.code === 6) return fail('service DNS', node, `${name} did not resolve: ${dnsCause(plan, node, dns)}`);
  return fail('service DNS', node, `${name} resolved, but http://${name}: ${o.why} (kube-proxy on ${node}: systemctl status ${UNITS.kubeProxy})`);
}

export function nodePortFinding(address: string, port: number, outcome: { ok: true; answer: string } | { ok: false; why: string }, node: string): Finding {
  const subject = `${node} ${address}:${port}`;
  if (outcome.ok) return pass('NodePort', subject, `answered ${outcome.answer}`);
  return fail(
    'NodePort',
    subject,
    `${outcome.why} (kube-proxy on ${node}: systemctl status ${UNITS.kubeProxy}; from this machine ${address} must be reachable)`,
  );
}

// --- the report ------------------------------------------------------------------------------

export function reportTable(findings: readonly Finding[]): string {
  const w = (k: 'check' | 'subject') => Math.max(...findings.map((f) => f[k].length), k.length);
  const cw = w('check');
  const sw = w('subject');
  const lines = [`${'result'.padEnd(6)}  ${'check'.padEnd(cw)}  ${'subject'.padEnd(sw)}  detail`];
  for (const f of findings) lines.push(`${(f.ok ? 'PASS' : 'FAIL').padEnd(6)}  ${f.check.padEnd(cw)}  ${f.subject.padEnd(sw)}  ${f.detail}`);
  return lines.join('\n');
}

/** The closing lines: counts, and every failure once more with its cause. */
export function summary(findings: readonly Finding[]): string {
  const failed = findings.filter((f) => !f.ok);
  if (!failed.length) return `smoke: all ${findings.length} checks passed`;
  return [`smoke: ${failed.length} of ${findings.length} checks failed`, ...failed.map((f) => `  ✗ ${f.check} ${f.subject}: ${f.detail}`)].join('\n');
}
