// `kube-ipsec smoke`, the edge: kubectl (with the admin kubeconfig) creates the run's namespace,
// pods and Services, waits for them with bounded timeouts and a progress line per step, runs
// the probes (curl inside the pods, HTTP from this machine to every NodePort), and removes all
// of it again. Every decision about what it sees is in decide.ts.
import { spawn } from 'node:child_process';
import type { IEndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
import type { IEvent } from 'kubernetes-models/v1/Event';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { INode } from 'kubernetes-models/v1/Node';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IService } from 'kubernetes-models/v1/Service';
import type { Plan } from '../plan/plan.ts';
import type { Runner } from '../run.ts';
import {
  nodeFindings,
  nodePortFinding,
  podIpFinding,
  podProblem,
  podReady,
  podToPodFinding,
  probeOutcome,
  serviceDnsFinding,
  streamFinding,
  type DnsState,
  type Finding,
  type HttpProbe,
  type List,
} from './decide.ts';
import { SERVICE_PORT, SMOKE_PORT, serviceName, smokeYamlSteps, type SmokeRun } from './manifests.ts';

/** What the smoke test needs from the cluster: kubectl's verbs, behind an interface. */
export interface Kube {
  /** `kubectl get ARGS -o json`; undefined when the object does not exist. */
  get<T>(args: string[]): Promise<T | undefined>;
  /** `kubectl apply -f -` */
  apply(yaml: string): Promise<void>;
  /** `kubectl exec` of argv in the pod's container; never throws for the command's own exit status. */
  exec(namespace: string, pod: string, argv: string[], timeoutMs: number): Promise<HttpProbe>;
  /** `kubectl logs` of the pod's container. */
  logs(namespace: string, pod: string, timeoutMs: number): Promise<HttpProbe>;
  /** One HTTP GET of `path` through `kubectl port-forward` to the pod's `port`. */
  portForwardGet(
    namespace: string,
    pod: string,
    port: number,
    path: string,
    timeoutMs: number,
  ): Promise<{ ok: true; answer: string } | { ok: false; why: string }>;
  /** Starts deleting the namespace (and all in it). */
  deleteNamespace(namespace: string): Promise<void>;
}

export function kubectlKube(runner: Runner, kubeconfig: string, kubectl = 'kubectl'): Kube {
  const base = [kubectl, `--kubeconfig=${kubeconfig}`, '--request-timeout=20s'];
  return {
    async get<T>(args: string[]) {
      const r = await runner.run([...base, 'get', ...args, '-o', 'json'], { allowFail: true, timeoutMs: 30_000 });
      if (r.code === 0) return JSON.parse(r.stdout) as T;
      if (/NotFound|not found/.test(r.stderr)) return undefined;
      throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
    },
    async apply(yaml) {
      await runner.run([...base, 'apply', '-f', '-'], { input: yaml, timeoutMs: 60_000 });
    },
    async exec(namespace, pod, argv, timeoutMs) {
      const r = await runner.run([...base, '-n', namespace, 'exec', pod, '--', ...argv], { allowFail: true, timeoutMs });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    },
    async logs(namespace, pod, timeoutMs) {
      const r = await runner.run([...base, '-n', namespace, 'logs', pod], { allowFail: true, timeoutMs });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    },
    portForwardGet(namespace, pod, port, path, timeoutMs) {
      return portForwardGet([...base, '-n', namespace, 'port-forward', `pod/${pod}`, `:${port}`], path, timeoutMs);
    },
    async deleteNamespace(namespace) {
      await runner.run([...base, 'delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { timeoutMs: 60_000 });
    },
  };
}

/**
 * `kubectl port-forward … :PORT` picks a free local port and prints it ("Forwarding from
 * 127.0.0.1:NNNNN -> PORT"); one GET through it, then the forwarder is stopped. A process that
 * runs until stopped, so spawned here rather than through the Runner.
 */
function portForwardGet(argv: string[], path: string, timeoutMs: number): Promise<{ ok: true; answer: string } | { ok: false; why: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    let requested = false;
    const finish = (r: { ok: true; answer: string } | { ok: false; why: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGTERM');
      resolve(r);
    };
    const deadline = Date.now() + timeoutMs;
    const timer = setTimeout(
      () => finish({ ok: false, why: `no answer through the forward within ${timeoutMs / 1000} s${err ? `: ${err.trim().split('\n').pop()}` : ''}` }),
      timeoutMs,
    );
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', (e) => finish({ ok: false, why: e.message }));
    child.on('close', (code) => finish({ ok: false, why: `kubectl port-forward exited ${code}: ${err.trim().split('\n').pop() ?? ''}` }));
    child.stdout.on('data', async (d: Buffer) => {
      out += d;
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
      // One request: every connection makes kubectl print a line, which must not start another.
      if (!m || settled || requested) return;
      requested = true;
      finish(await fetchGet(`http://127.0.0.1:${m[1]}${path}`, Math.max(1000, deadline - Date.now())));
    });
  });
}

/** An HTTP GET from this machine (the NodePort probe), bounded. */
type HttpGet = (url: string, timeoutMs: number) => Promise<{ ok: true; answer: string } | { ok: false; why: string }>;

const fetchGet: HttpGet = async (url, timeoutMs) => {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.text()).trim();
    return res.ok ? { ok: true, answer: body } : { ok: false, why: `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { ok: false, why: e.name === 'TimeoutError' ? 'no answer before the timeout' : (e.cause?.code ?? e.message) };
  }
};

export interface SmokeOptions {
  plan: Plan;
  run: SmokeRun;
  kube: Kube;
  httpGet?: HttpGet;
  say: (line: string) => void;
  /** How long pods may take to be Ready (image pull, sandbox, probe). */
  podTimeoutMs?: number;
  /** Leave the namespace for inspection. */
  keep?: boolean;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * An HTTP GET from inside a pod, at most 5 s: curl where the image has it (the registry's
 * agnhost, on a Debian base), else BusyBox wget under timeout (the agnhost npm run binaries
 * builds; BusyBox's own wget -T does not bound a connect that gets no answer).
 */
const CURL = (url: string) => ['sh', '-c', 'if command -v curl >/dev/null; then exec curl -sS -m 5 "$1"; else exec timeout 5 wget -q -O - "$1"; fi', 'sh', url];
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runSmoke(o: SmokeOptions): Promise<Finding[]> {
  const { plan, run, kube, say } = o;
  const sleep = o.sleep ?? delay;
  const findings: Finding[] = [];
  say(`nodes: reading ${plan.minions.length} node(s) from the API server`);
  findings.push(...nodeFindings(plan, (await kube.get<List<INode>>(['nodes'])) ?? { items: [] }));
  try {
    say(`creating namespace ${run.namespace}: ${run.pods.size} pod(s) (${plan.images.smoke.ref}), Services ${run.service} and ${run.nodePortService}`);
    const steps = smokeYamlSteps(plan, run);
    await kube.apply(steps.namespace);
    await waitForDefaultServiceAccount(o, sleep);
    await kube.apply(steps.workload);
    const pods = await waitForPods(o, sleep);
    const events = (await kube.get<List<IEvent>>(['events', '-n', run.namespace]))?.items ?? [];
    const ready = new Map<string, IPod>();
    for (const [node, name] of run.pods) {
      const pod = pods.get(name);
      if (pod && podReady(pod)) {
        ready.set(node, pod);
        findings.push({ check: 'pod', subject: `${name} on ${node}`, ok: true, detail: `Ready, ${pod.status?.podIP}` });
        findings.push(podIpFinding(plan, node, pod));
      } else {
        findings.push({ check: 'pod', subject: `${name} on ${node}`, ok: false, detail: pod ? podProblem(pod, events) : 'was not created' });
      }
    }

    say(`pod → pod: HTTP between the pods of every pair of ${ready.size} node(s)`);
    for (const [from, src] of ready) {
      for (const [to, dst] of ready) {
        if (from === to) continue;
        const ip = dst.status!.podIP!;
        const probe = await kube.exec(run.namespace, src.metadata!.name!, CURL(`http://${ip}:${SMOKE_PORT}/hostname`), 20_000);
        findings.push(podToPodFinding(from, to, ip, probe, dst.metadata!.name!));
      }
    }

    const [firstNode, first] = [...ready][0] ?? [];
    if (first) {
      const pod = first.metadata!.name!;
      say(`kubectl logs, exec and port-forward: ${pod} on ${firstNode}`);
      const logs = await o.kube.logs(run.namespace, pod, 30_000);
      findings.push(
        streamFinding(
          'logs',
          pod,
          logs.code === 0 && logs.stdout.trim()
            ? { ok: true, answer: `${logs.stdout.trim().split('\n').length} lines, e.g. "${logs.stdout.trim().split('\n')[0]!.slice(0, 60)}"` }
            : { ok: false, why: logs.code === 0 ? 'no lines' : logs.stderr.trim() || `exit ${logs.code}` },
        ),
      );
      const exec = await kube.exec(run.namespace, pod, ['hostname'], 30_000);
      findings.push(
        streamFinding(
          'exec',
          pod,
          exec.code === 0 && exec.stdout.trim() === pod
            ? { ok: true, answer: `hostname: ${pod}` }
            : { ok: false, why: exec.code === 0 ? `hostname answered "${exec.stdout.trim()}"` : exec.stderr.trim() || `exit ${exec.code}` },
        ),
      );
      const forwarded = await kube.portForwardGet(run.namespace, pod, SMOKE_PORT, '/hostname', 60_000);
      findings.push(
        streamFinding(
          'port-forward',
          pod,
          forwarded.ok && forwarded.answer !== pod
            ? { ok: false, why: `answered "${forwarded.answer}"` }
            : forwarded.ok
              ? { ok: true, answer: `localhost → :${SMOKE_PORT}/hostname answered ${pod}` }
              : forwarded,
        ),
      );
    }

    const name = serviceName(plan, run);
    const podNames = [...ready.values()].map((p) => p.metadata!.name!);
    say(`service DNS: ${name} from a pod on each node`);
    let dns: DnsState | undefined;
    for (const [node, pod] of ready) {
      // kube-proxy programs a new Service within seconds: a few tries before a verdict.
      const probe = await retry(
        () => kube.exec(run.namespace, pod.metadata!.name!, CURL(`http://${name}:${SERVICE_PORT}/hostname`), 20_000),
        (p) => probeOutcome(p, podNames).ok,
        4,
        sleep,
      );
      if (!probeOutcome(probe, podNames).ok) dns ??= await dnsState(kube);
      findings.push(serviceDnsFinding(plan, node, name, probe, podNames, dns ?? { pods: [], slices: [], events: [] }));
    }

    const svc = await kube.get<IService>(['service', run.nodePortService, '-n', run.namespace]);
    const nodePort = svc?.spec?.ports?.[0]?.nodePort;
    if (nodePort === undefined) {
      findings.push({ check: 'NodePort', subject: run.nodePortService, ok: false, detail: 'the Service has no nodePort (was it created?)' });
    } else {
      say(`NodePort ${nodePort}: from this machine to every node that runs kube-proxy`);
      const get = o.httpGet ?? fetchGet;
      for (const m of plan.minions) {
        const url = `http://${m.ip}:${nodePort}/hostname`;
        const outcome = await retry(
          () => get(url, 5_000),
          (x) => x.ok && (podNames.length === 0 || podNames.includes(x.answer)),
          4,
          sleep,
        );
        const checked =
          outcome.ok && podNames.length && !podNames.includes(outcome.answer)
            ? { ok: false as const, why: `answered "${outcome.answer}", not a smoke pod` }
            : outcome;
        findings.push(nodePortFinding(m.ip, nodePort, checked, m.name));
      }
    }
  } finally {
    if (o.keep) say(`keeping namespace ${run.namespace} (--keep): kubectl delete namespace ${run.namespace} removes it`);
    else await cleanup(o, sleep);
  }
  return findings;
}

/** The namespace's `default` ServiceAccount, made by the controller-manager; bounded at 60 s. */
async function waitForDefaultServiceAccount(o: SmokeOptions, sleep: (ms: number) => Promise<void>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await o.kube.get(['serviceaccount', 'default', '-n', o.run.namespace]))) {
    if (Date.now() >= deadline)
      throw new Error(
        `namespace ${o.run.namespace} has no default ServiceAccount after 60 s: is kube-controller-manager running? (on the master: systemctl status kube-controller-manager)`,
      );
    await sleep(1_000);
  }
}

async function waitForPods(o: SmokeOptions, sleep: (ms: number) => Promise<void>): Promise<Map<string, IPod>> {
  const { run, kube, say } = o;
  const deadline = Date.now() + (o.podTimeoutMs ?? 180_000);
  let last = '';
  for (;;) {
    const list = (await kube.get<List<IPod>>(['pods', '-n', run.namespace]))?.items ?? [];
    const pods = new Map(list.map((p) => [p.metadata!.name!, p]));
    const ready = list.filter(podReady).length;
    const waiting = [...run.pods.values()].filter((n) => !pods.get(n) || !podReady(pods.get(n)!));
    const line = `pods Ready ${ready}/${run.pods.size}${waiting.length ? ` (waiting: ${waiting.map((n) => `${n} ${phaseOf(pods.get(n))}`).join(', ')})` : ''}`;
    if (line !== last) say(line);
    last = line;
    if (!waiting.length) return pods;
    if (Date.now() >= deadline) {
      say(`pods: gave up waiting after ${Math.round((o.podTimeoutMs ?? 180_000) / 1000)} s`);
      return pods;
    }
    await sleep(2_000);
  }
}

function phaseOf(pod: IPod | undefined): string {
  if (!pod) return 'not created';
  const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting?.reason;
  return waiting ?? pod.status?.phase ?? 'Pending';
}

async function dnsState(kube: Kube): Promise<DnsState> {
  const [service, pods, slices, events] = await Promise.all([
    kube.get<IService>(['service', 'kube-dns', '-n', 'kube-system']),
    kube.get<List<IPod>>(['pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns']),
    kube.get<List<IEndpointSlice>>(['endpointslices', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=kube-dns']),
    kube.get<List<IEvent>>(['events', '-n', 'kube-system']),
  ]);
  return { ...(service && { service }), pods: pods?.items ?? [], slices: slices?.items ?? [], events: events?.items ?? [] };
}

async function retry<T>(attempt: () => Promise<T>, good: (x: T) => boolean, tries: number, sleep: (ms: number) => Promise<void>): Promise<T> {
  let last = await attempt();
  for (let i = 1; i < tries && !good(last); i++) {
    await sleep(2_000);
    last = await attempt();
  }
  return last;
}

async function cleanup(o: SmokeOptions, sleep: (ms: number) => Promise<void>): Promise<void> {
  const { kube, run, say } = o;
  say(`removing namespace ${run.namespace}`);
  try {
    await kube.deleteNamespace(run.namespace);
    const deadline = Date.now() + 90_000;
    while ((await kube.get<INamespace>(['namespace', run.namespace])) !== undefined) {
      if (Date.now() >= deadline) {
        say(`namespace ${run.namespace} is still terminating after 90 s; the API server finishes it (kubectl get namespace ${run.namespace})`);
        return;
      }
      await sleep(2_000);
    }
    say(`namespace ${run.namespace} removed`);
  } catch (err) {
    say(`could not remove namespace ${run.namespace}: ${(err as Error).message}; remove it with kubectl delete namespace ${run.namespace}`);
  }
}
