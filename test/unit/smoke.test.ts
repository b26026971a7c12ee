// The smoke test's decisions against `kubectl get … -o json` outputs. The fixtures are
// constructed from the Kubernetes API reference (not recorded from a live cluster: none can run
// here); each is validated against the API's OpenAPI schema first, so their shapes are real.
// The orchestration runs against an in-memory Kube that answers like the API server would.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
import { Event } from 'kubernetes-models/v1/Event';
import { Node } from 'kubernetes-models/v1/Node';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import type { IPod } from 'kubernetes-models/v1/Pod';
import {
  dnsCause,
  nodeFindings,
  podIpFinding,
  podProblem,
  podReady,
  podToPodFinding,
  probeOutcome,
  reportTable,
  serviceDnsFinding,
  summary,
  type DnsState,
  type List,
} from '../../src/smoke/decide.ts';
import { serviceName, smokeObjects, smokeRun, smokeYamlSteps } from '../../src/smoke/manifests.ts';
import { runSmoke, type Kube } from '../../src/smoke/smoke.ts';
import { plan as planOf } from '../helpers/cluster.ts';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./smoke-fixtures/${name}.json`, import.meta.url), 'utf8')) as T;
const plan = planOf();
const pods = fixture<List<IPod>>('pods-smoke');
const pod = (list: List<IPod>, name: string) => list.items.find((p) => p.metadata?.name === name)!;
const events = fixture<List<never>>('events-smoke').items;
const notReadyDns: DnsState = {
  service: fixture('kube-dns-service'),
  pods: fixture<List<IPod>>('coredns-pods-not-ready').items,
  slices: fixture<List<never>>('kube-dns-slices-not-ready').items,
  events: [],
};

describe('fixtures', () => {
  it.each([
    ['nodes-ready', Node],
    ['nodes-mixed', Node],
    ['nodes-unknown', Node],
    ['pods-smoke', Pod],
    ['pods-pull-and-wrong-subnet', Pod],
    ['coredns-pods-not-ready', Pod],
    ['events-smoke', Event],
    ['kube-dns-slices-not-ready', EndpointSlice],
    ['kube-dns-slices-ready', EndpointSlice],
  ] as const)('%s: every item is a valid API object (OpenAPI schema)', (name, Model) => {
    for (const item of fixture<List<object>>(name).items)
      expect(() => new (Model as unknown as new (d: object) => { validate(): void })(item).validate()).not.toThrow();
  });
  it('kube-dns-service is a valid Service', () => expect(() => new Service(fixture('kube-dns-service')).validate()).not.toThrow());
});

describe('nodes', () => {
  it('every minion registered, at its cluster.yaml address, Ready: pass', () => {
    const f = nodeFindings(plan, fixture('nodes-ready'));
    expect(f.map((x) => [x.subject, x.ok])).toEqual([
      ['minion1', true],
      ['minion2', true],
      ['minion3', true],
    ]);
    expect(f[0]!.detail).toBe('Ready (v1.35.0, docker://20.10.24+dfsg1)');
  });

  it('NotReady for want of a pod network names the CNI files; a wrong InternalIP names the kubelet flag', () => {
    const [m1, m2, m3] = nodeFindings(plan, fixture('nodes-mixed'));
    expect(m1!.ok).toBe(true);
    expect(m2!.ok).toBe(false);
    expect(m2!.detail).toMatch(
      /^NotReady \(KubeletNotReady: container runtime network not ready: NetworkReady=false .*\): the runtime on minion2 has no pod network; check \/etc\/cni\/net\.d\/10-kube-ipsec\.conflist and \/opt\/cni\/bin\/ipsec-cni there \(provision minion2\)$/,
    );
    expect(m3!.detail).toBe("registered with InternalIP 10.0.2.15, but cluster.yaml gives minion3 192.168.10.23 (the kubelet's --node-ip)");
  });

  it('Unknown means the kubelet stopped reporting; an absent node never registered', () => {
    const f = nodeFindings(plan, fixture('nodes-unknown'));
    expect(f[0]!.detail).toMatch(
      /^Ready=Unknown \(NodeStatusUnknown: Kubelet stopped posting node status\.\): the kubelet on minion1 stopped posting its status/,
    );
    expect(f[1]!.detail).toBe(
      "not registered: minion2's kubelet has not reached the API server (on minion2: systemctl status kubelet.service; journalctl -u kubelet.service)",
    );
  });
});

describe('pods', () => {
  it('Ready means Running with condition Ready=True', () => {
    expect(pods.items.map(podReady)).toEqual([true, false, false]);
  });

  it('ContainerCreating with a sandbox failure is the pod network, quoting the plugin', () => {
    expect(podProblem(pod(pods, 'smoke-minion2'), events)).toBe(
      'stuck in ContainerCreating on minion2: the pod network could not be set up: Failed to create pod sandbox: rpc error: code = Unknown desc = failed to set up sandbox container "4d1e" network for pod "smoke-minion2": networkPlugin cni failed to set up pod "smoke-minion2_kube-ipsec-smoke-a1b2c3" network: plugin type="ipsec-cni" failed (add): bridge ipsec-br01: no such device (the CNI plugin\'s log on minion2: /var/log/ipsec-cni.log)',
    );
  });

  it('an unscheduled pod quotes the scheduler', () => {
    expect(podProblem(pod(pods, 'smoke-minion3'), events)).toMatch(
      /^not scheduled: 0\/3 nodes are available: 1 node\(s\) had untolerated taint \{node\.kubernetes\.io\/not-ready: \}.*\(its node must be Ready and match nodeSelector \{"kubernetes\.io\/hostname":"minion3"\}\)$/,
    );
  });

  it('an image that cannot be pulled points at the air-gapped archive', () => {
    const list = fixture<List<IPod>>('pods-pull-and-wrong-subnet');
    expect(podProblem(pod(list, 'smoke-minion1'), [])).toMatch(
      /^ImagePullBackOff on minion1: registry\.k8s\.io\/e2e-test-images\/agnhost:2\.53@sha256:\S+ cannot be pulled \(Back-off pulling image .*no such host\); without a registry, put its archive in binaries\.dir and provision minion1$/,
    );
  });

  it('a pod address outside its node’s subnet names whose subnet it is', () => {
    const list = fixture<List<IPod>>('pods-pull-and-wrong-subnet');
    expect(podIpFinding(plan, 'minion1', pod(pods, 'smoke-minion1'))).toMatchObject({ ok: true, detail: '10.240.1.5 in 10.240.1.0/24' });
    const wrong = podIpFinding(plan, 'minion2', pod(list, 'smoke-minion2'));
    expect(wrong).toMatchObject({
      ok: false,
      detail:
        "10.240.3.4 is outside minion2's pod subnet 10.240.2.0/24 (it is minion3's): the runtime on minion2 does not use /etc/cni/net.d/10-kube-ipsec.conflist as rendered",
    });
  });
});

describe('probes', () => {
  it('curl’s exit status says what went wrong; the answer must be the expected pod', () => {
    expect(probeOutcome({ code: 0, stdout: 'smoke-minion2', stderr: '' }, ['smoke-minion2'])).toEqual({ ok: true, answer: 'smoke-minion2' });
    expect(probeOutcome({ code: 0, stdout: 'smoke-minion3', stderr: '' }, ['smoke-minion2'])).toMatchObject({
      ok: false,
      why: 'answered "smoke-minion3", expected smoke-minion2',
    });
    expect(probeOutcome({ code: 6, stdout: '', stderr: 'curl: (6) Could not resolve host' }, ['x'])).toMatchObject({
      ok: false,
      code: 6,
      why: 'the name did not resolve',
    });
    expect(probeOutcome({ code: 35, stdout: '', stderr: 'curl: (35) SSL connect error' }, ['x'])).toMatchObject({
      why: 'curl exited 35: curl: (35) SSL connect error',
    });
  });

  it('pod → pod: a timeout points at the tunnel between the two nodes', () => {
    const f = podToPodFinding(
      'minion1',
      'minion3',
      '10.240.3.2',
      { code: 28, stdout: '', stderr: 'curl: (28) Connection timed out after 5001 milliseconds' },
      'smoke-minion3',
    );
    expect(f).toEqual({
      check: 'pod → pod',
      subject: 'minion1 → minion3',
      ok: false,
      detail:
        'http://10.240.3.2:8080 from minion1: no answer before the timeout: the tunnel minion1↔minion3 may be down or dropping pod traffic (npm run check; on minion1: ipsec statusall)',
    });
  });
});

describe('cluster DNS', () => {
  const name = 'smoke.kube-ipsec-smoke-a1b2c3.svc.cluster.local';
  it('no ready endpoints: CoreDNS pods not Ready on the node that has them, and why', () => {
    expect(dnsCause(plan, 'minion1', notReadyDns)).toBe(
      'no endpoints: CoreDNS pods not Ready on minion2; coredns-7c65d6cfc9-x2x4k: running on minion2 but not Ready (its readiness probe on port 8080 fails)',
    );
    const f = serviceDnsFinding(plan, 'minion1', name, { code: 6, stdout: '', stderr: 'curl: (6) Could not resolve host' }, ['smoke-minion1'], notReadyDns);
    expect(f.ok).toBe(false);
    expect(f.detail).toMatch(/^smoke\.kube-ipsec-smoke-a1b2c3\.svc\.cluster\.local did not resolve: no endpoints: CoreDNS pods not Ready on minion2/);
  });

  it('no Service, the wrong clusterIP, no pods, or everything ready (then the path is to blame)', () => {
    expect(dnsCause(plan, 'minion1', { pods: [], slices: [], events: [] })).toMatch(
      /^no kube-dns Service in kube-system \(the add-ons are applied on master by kube-ipsec-addons\.service/,
    );
    const moved = structuredClone(notReadyDns);
    moved.service!.spec!.clusterIP = '10.30.0.53';
    expect(dnsCause(plan, 'minion1', moved)).toBe('kube-dns has clusterIP 10.30.0.53, but kubelets send pods to 10.30.0.10 (network.clusterDns)');
    expect(dnsCause(plan, 'minion1', { ...notReadyDns, pods: [] })).toMatch(/^no CoreDNS pods/);
    const ready = { ...notReadyDns, slices: fixture<List<never>>('kube-dns-slices-ready').items };
    expect(dnsCause(plan, 'minion3', ready)).toMatch(
      /^CoreDNS has ready endpoints \(10\.240\.2\.7 on minion2, 10\.240\.2\.8 on minion2\), but queries from minion3 to 10\.30\.0\.10 get no answer/,
    );
  });

  it('resolved but no answer through the Service points at kube-proxy', () => {
    const f = serviceDnsFinding(plan, 'minion2', name, { code: 7, stdout: '', stderr: '' }, ['smoke-minion1'], notReadyDns);
    expect(f.detail).toBe(`${name} resolved, but http://${name}: connection refused (kube-proxy on minion2: systemctl status kube-proxy.service)`);
  });
});

describe('manifests', () => {
  const run = smokeRun(plan, 'a1b2c3');
  it('one pod per minion placed by the scheduler, a Service and a NodePort, all valid API objects in the run’s namespace', () => {
    const objects = smokeObjects(plan, run);
    expect(objects.map((o) => `${o.kind}/${o.metadata!.name}`)).toEqual([
      'Namespace/kube-ipsec-smoke-a1b2c3',
      'Pod/smoke-minion1',
      'Pod/smoke-minion2',
      'Pod/smoke-minion3',
      'Service/smoke',
      'Service/smoke-nodeport',
    ]);
    const models = { Namespace, Pod, Service } as Record<string, new (d: object) => { validate(): void }>;
    for (const o of objects) {
      expect(() => new models[o.kind!]!(o).validate()).not.toThrow();
      if (o.kind !== 'Namespace') expect(o.metadata!.namespace).toBe(run.namespace);
    }
    const p = objects[1] as IPod;
    expect(p.spec!.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'minion1' });
    expect(p.spec!.containers[0]!.image).toBe(plan.images.smoke.ref);
    const steps = smokeYamlSteps(plan, run);
    expect(parseAllDocuments(steps.namespace).map((d) => d.toJS().kind)).toEqual(['Namespace']);
    expect(parseAllDocuments(steps.workload).length).toBe(objects.length - 1);
    expect(serviceName(plan, run)).toBe('smoke.kube-ipsec-smoke-a1b2c3.svc.cluster.local');
  });

  it('the report tables every finding and repeats each failure with its cause', () => {
    const findings = nodeFindings(plan, fixture('nodes-mixed'));
    expect(reportTable(findings).split('\n')[0]).toMatch(/^result\s+check\s+subject\s+detail$/);
    expect(summary(findings)).toMatch(/^smoke: 2 of 3 checks failed\n  ✗ node minion2: NotReady/);
    expect(summary(findings.slice(0, 1))).toBe('smoke: all 1 checks passed');
  });
});

/** An API server in memory: applied objects, pods that become Ready (or not) on their node. */
function fakeKube(opts: {
  podIp: (node: string) => string | undefined;
  curl: (pod: string, url: string) => { code: number; stdout: string };
  applyFails?: boolean;
  portForwardFails?: boolean;
}) {
  const state = { namespace: undefined as string | undefined, pods: [] as IPod[], deleted: [] as string[], nodePort: 31234 };
  const kube: Kube = {
    async get<T>(args: string[]) {
      const [what, name] = args;
      if (what === 'nodes') return fixture('nodes-ready') as T;
      if (what === 'pods' && args.includes('kube-system')) return fixture('coredns-pods-not-ready') as T;
      if (what === 'pods') return { items: state.pods } as T;
      if (what === 'events') return { items: [] } as T;
      if (what === 'service' && name === 'kube-dns') return fixture('kube-dns-service') as T;
      if (what === 'service') return { spec: { ports: [{ port: 80, nodePort: state.nodePort }] } } as T;
      if (what === 'endpointslices') return fixture('kube-dns-slices-not-ready') as T;
      if (what === 'serviceaccount') return (state.namespace ? { metadata: { name: 'default', namespace: state.namespace } } : undefined) as T;
      if (what === 'namespace') return (state.namespace ? { metadata: { name: state.namespace } } : undefined) as T;
      throw new Error(`unexpected get ${args.join(' ')}`);
    },
    async apply(yaml) {
      if (opts.applyFails) throw new Error('kubectl apply: the server has asked for the client to provide credentials');
      const docs = parseAllDocuments(yaml).map((d) => d.toJS());
      const ns = docs.find((d) => d.kind === 'Namespace');
      if (ns) state.namespace = ns.metadata.name;
      // The API server's ServiceAccount admission: no pod before the namespace's default account.
      if (docs.some((d) => d.kind === 'Pod') && !state.namespace) throw new Error('pods "smoke-minion1" is forbidden: error looking up service account');
      if (!docs.some((d) => d.kind === 'Pod')) return;
      state.pods = docs
        .filter((d) => d.kind === 'Pod')
        .map((d) => {
          const node = d.spec.nodeSelector['kubernetes.io/hostname'];
          const ip = opts.podIp(node);
          return {
            ...d,
            spec: { ...d.spec, nodeName: node },
            status: ip
              ? { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] }
              : {
                  phase: 'Pending',
                  containerStatuses: [
                    { name: 'netexec', ready: false, restartCount: 0, image: '', imageID: '', state: { waiting: { reason: 'ContainerCreating' } } },
                  ],
                },
          };
        });
    },
    async exec(_ns, podName, argv) {
      if (argv.join(' ') === 'hostname') return { code: 0, stdout: `${podName}\n`, stderr: '' };
      return { ...opts.curl(podName, argv[argv.length - 1]!), stderr: '' };
    },
    async logs(_ns, pod) {
      return { code: 0, stdout: `I1207 started HTTP server on port 8080 (${pod})\n`, stderr: '' };
    },
    async portForwardGet(_ns, pod) {
      return opts.portForwardFails ? { ok: false, why: 'error upgrading connection: unable to upgrade connection' } : { ok: true, answer: pod };
    },
    async deleteNamespace(ns) {
      state.deleted.push(ns);
      state.namespace = undefined;
    },
  };
  return { kube, state };
}

describe('runSmoke (in-memory API server)', () => {
  const run = smokeRun(plan, 'feed01');
  const ips: Record<string, string> = { minion1: '10.240.1.2', minion2: '10.240.2.2', minion3: '10.240.3.2' };
  const podAt = (url: string) => Object.entries(ips).find(([, ip]) => url.includes(`//${ip}:`))?.[0];

  it('all well: every check passes, a progress line per step, and the namespace is removed', async () => {
    const { kube, state } = fakeKube({ podIp: (n) => ips[n], curl: (_p, url) => ({ code: 0, stdout: podAt(url) ? `smoke-${podAt(url)}` : 'smoke-minion2' }) });
    const lines: string[] = [];
    const findings = await runSmoke({
      plan,
      run,
      kube,
      say: (l) => lines.push(l),
      sleep: async () => {},
      httpGet: async () => ({ ok: true, answer: 'smoke-minion1' }),
    });
    expect(findings.filter((f) => !f.ok)).toEqual([]);
    expect(findings.filter((f) => f.check === 'pod → pod')).toHaveLength(6);
    expect(findings.filter((f) => ['logs', 'exec', 'port-forward'].includes(f.check)).map((f) => `${f.check} ${f.subject}: ${f.detail}`)).toEqual([
      'logs smoke-minion1: 1 lines, e.g. "I1207 started HTTP server on port 8080 (smoke-minion1)"',
      'exec smoke-minion1: hostname: smoke-minion1',
      'port-forward smoke-minion1: localhost → :8080/hostname answered smoke-minion1',
    ]);
    expect(findings.filter((f) => f.check === 'NodePort').map((f) => f.subject)).toEqual([
      'minion1 192.168.10.21:31234',
      'minion2 192.168.10.22:31234',
      'minion3 192.168.10.23:31234',
    ]);
    expect(lines).toEqual([
      'nodes: reading 3 node(s) from the API server',
      expect.stringMatching(/^creating namespace kube-ipsec-smoke-feed01: 3 pod\(s\)/),
      'pods Ready 3/3',
      'pod → pod: HTTP between the pods of every pair of 3 node(s)',
      'kubectl logs, exec and port-forward: smoke-minion1 on minion1',
      'service DNS: smoke.kube-ipsec-smoke-feed01.svc.cluster.local from a pod on each node',
      'NodePort 31234: from this machine to every node that runs kube-proxy',
      'removing namespace kube-ipsec-smoke-feed01',
      'namespace kube-ipsec-smoke-feed01 removed',
    ]);
    expect(state.deleted).toEqual(['kube-ipsec-smoke-feed01']);
  });

  it('a pod that never gets ready, DNS down: bounded wait, failures with causes, and still cleaned up', async () => {
    const { kube, state } = fakeKube({
      podIp: (n) => (n === 'minion3' ? undefined : ips[n]),
      curl: (_p, url) => (url.includes('svc.cluster.local') ? { code: 6, stdout: '' } : { code: 0, stdout: `smoke-${podAt(url)}` }),
    });
    const lines: string[] = [];
    const findings = await runSmoke({
      plan,
      run,
      kube,
      say: (l) => lines.push(l),
      sleep: async () => {},
      podTimeoutMs: 0,
      httpGet: async () => ({ ok: false, why: 'ECONNREFUSED' }),
    });
    const failed = findings.filter((f) => !f.ok);
    expect(failed.map((f) => `${f.check} ${f.subject}`)).toEqual([
      'pod smoke-minion3 on minion3',
      'service DNS minion1',
      'service DNS minion2',
      'NodePort minion1 192.168.10.21:31234',
      'NodePort minion2 192.168.10.22:31234',
      'NodePort minion3 192.168.10.23:31234',
    ]);
    expect(failed[0]!.detail).toBe('waiting on minion3: ContainerCreating');
    expect(failed[1]!.detail).toMatch(/did not resolve: no endpoints: CoreDNS pods not Ready on minion2/);
    expect(lines).toContain('pods: gave up waiting after 0 s');
    expect(state.deleted).toEqual(['kube-ipsec-smoke-feed01']);
  });

  it('an API error mid-run still removes the namespace, then reports the error', async () => {
    const { kube, state } = fakeKube({ podIp: () => undefined, curl: () => ({ code: 0, stdout: '' }), applyFails: true });
    await expect(runSmoke({ plan, run, kube, say: () => {}, sleep: async () => {} })).rejects.toThrow(/provide credentials/);
    expect(state.deleted).toEqual(['kube-ipsec-smoke-feed01']);
  });
});
