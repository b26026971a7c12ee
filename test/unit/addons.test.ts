// Cluster add-ons and air-gapped images, as rendered from the plan. Every rendered Kubernetes
// object is validated against the API's OpenAPI schema by kubernetes-models (the models and
// precompiled validators generated from the Kubernetes release's OpenAPI spec; see
// docs/check-and-smoke.md, "What was verified where", for which release and why), never against a schema written here.
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import type { Plan } from '../../src/plan/plan.ts';
import { renderCluster } from '../../src/render/index.ts';
import { affectedUnits, parseRestartMap } from '../../src/render/restarts.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { COREDNS_REPLICAS, corefile } from '../../src/render/addons.ts';
import { placeholderPki, plan as planOf } from '../helpers/cluster.ts';

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
};

const templates = loadTemplates();
const render = (p: Plan) => renderCluster(p, placeholderPki(p), templates);
const fileOf = (p: Plan, node: string, path: string) =>
  render(p)
    .nodes.get(node)!
    .find((f) => f.path === path);

/** Every object of every manifest under the add-ons directory of the master. */
function addonObjects(
  p: Plan,
): { path: string; object: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<string, unknown> }[] {
  const files = render(p)
    .nodes.get(p.master.name)!
    .filter((f) => f.path.startsWith(`${PATHS.addonsDir}/`));
  return files.flatMap((f) =>
    parseAllDocuments(f.content).map((d) => {
      expect(d.errors, f.path).toEqual([]);
      return { path: f.path, object: d.toJS() };
    }),
  );
}

describe('cluster add-ons', () => {
  const plan = planOf();
  const objects = addonObjects(plan);

  it('are valid objects of the Kubernetes API (OpenAPI schema, kubernetes-models)', () => {
    expect(objects.length).toBeGreaterThanOrEqual(7);
    for (const { path, object } of objects) {
      const model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(model, `${path}: ${object.apiVersion} ${object.kind} has no model`).toBeDefined();
      expect(() => new model!(object as never).validate(), `${path}: ${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('the validation is not a rubber stamp: a wrong type or a missing field is refused', () => {
    const deployment = objects.find((o) => o.object.kind === 'Deployment')!.object;
    const broken = structuredClone(deployment) as unknown as {
      spec: { replicas: unknown; template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } };
    };
    broken.spec.replicas = 'two';
    broken.spec.template.spec.containers[0]!.ports[0]!.containerPort = '53';
    expect(() => new Deployment(broken as never).validate()).toThrow(/replicas must be integer[\s\S]*containerPort must be integer/);
    const noRoleRef = structuredClone(objects.find((o) => o.object.kind === 'ClusterRoleBinding')!.object);
    delete (noRoleRef as Record<string, unknown>).roleRef;
    expect(() => new ClusterRoleBinding(noRoleRef as never).validate()).toThrow(/roleRef/);
  });

  it('CoreDNS serves network.clusterDns for cluster.domain, with its RBAC and at least two replicas spread over the nodes', () => {
    const p = planOf({ 'cluster.domain': 'lab.example', 'network.serviceCidr': '10.96.0.0/16', 'network.clusterDns': '10.96.0.53' });
    const objs = addonObjects(p).map((o) => o.object) as unknown as Record<string, any>[];
    const service = objs.find((o) => o.kind === 'Service')!;
    expect(service.spec.clusterIP).toBe('10.96.0.53');
    expect(service.spec.ports.map((x: { port: number; protocol: string }) => `${x.port}/${x.protocol}`)).toEqual(['53/UDP', '53/TCP', '9153/TCP']);
    const deployment = objs.find((o) => o.kind === 'Deployment')!;
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(deployment.spec.replicas).toBe(COREDNS_REPLICAS);
    expect(deployment.spec.template.spec.topologySpreadConstraints[0].topologyKey).toBe('kubernetes.io/hostname');
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
    const config = objs.find((o) => o.kind === 'ConfigMap')!;
    expect(config.data.Corefile).toBe(corefile('lab.example'));
    expect(config.data.Corefile).toMatch(/kubernetes lab\.example in-addr\.arpa ip6\.arpa/);
    expect(deployment.spec.template.spec.volumes[0].configMap.name).toBe(config.metadata.name);
    expect(deployment.spec.template.spec.serviceAccountName).toBe(objs.find((o) => o.kind === 'ServiceAccount')!.metadata.name);
    const binding = objs.find((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'system:coredns')!;
    expect(binding.roleRef.name).toBe(objs.find((o) => o.kind === 'ClusterRole')!.metadata.name);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }]);
    // the kubelet sends pods to the same address and domain
    const kubelet = fileOf(p, 'minion1', PATHS.kubeletConfig)!.content;
    expect(kubelet).toMatch(/clusterDNS:\n\s+- 10\.96\.0\.53/);
    expect(kubelet).toMatch(/clusterDomain: lab\.example/);
  });

  it('the apiserver’s kubelet client identity is bound to system:kubelet-api-admin (logs, exec, port-forward)', () => {
    const binding = objects.find((o) => o.object.kind === 'ClusterRoleBinding' && (o.object as any).roleRef.name === 'system:kubelet-api-admin')!.object as any;
    expect(binding.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'kube-apiserver-kubelet-client' }]);
  });

  it('images are pinned by digest where nodes pull, by tag (and image ID) in an air-gapped install', () => {
    const pulled = objects.find((o) => o.object.kind === 'Deployment')!.object as any;
    expect(pulled.spec.template.spec.containers[0].image).toMatch(/^registry\.k8s\.io\/coredns\/coredns:v1\.14\.6@sha256:[0-9a-f]{64}$/);
    expect(fileOf(plan, 'minion1', `${PATHS.systemdDir}/${UNITS.criDockerService}`)!.content).toMatch(
      /--pod-infra-container-image=registry\.k8s\.io\/pause:3\.10\.2@sha256:[0-9a-f]{64}/,
    );
    const airGapped = planOf({ binaries: { dir: './binaries' } });
    const deployment = addonObjects(airGapped).find((o) => o.object.kind === 'Deployment')!.object as any;
    expect(deployment.spec.template.spec.containers[0].image).toBe('registry.k8s.io/coredns/coredns:v1.14.6');
    expect(deployment.spec.template.spec.containers[0].imagePullPolicy).toBe('IfNotPresent');
  });

  it('are applied by a oneshot unit on the master after the API server, waiting on /readyz with a bound', () => {
    const unit = fileOf(plan, 'master', `${PATHS.systemdDir}/${UNITS.addons}`)!.content;
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^Requires=kube-apiserver\.service$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^After=kube-apiserver\.service/m);
    const script = fileOf(plan, 'master', PATHS.addonsScript)!;
    expect(script.mode).toBe(0o755);
    expect(script.content).toMatch(/get --raw='\/readyz'/);
    expect(script.content).toMatch(/^bound=300$/m);
    expect(script.content).toMatch(
      /^as_admin apply --server-side --field-manager=kube-ipsec --force-conflicts -f \/etc\/kubernetes\/addons\/00-cluster-admins\.yaml -f \/etc\/kubernetes\/addons\/10-rbac\.yaml -f \/etc\/kubernetes\/addons\/20-coredns\.yaml$/m,
    );
    const env = fileOf(plan, 'master', PATHS.nodeEnv)!.content;
    expect(env).toMatch(/UNITS=".* kube-scheduler\.service kube-ipsec-addons\.service"/);
  });

  it('root on the master uses the admin kubeconfig by default (0600), and kubectl is installed there', () => {
    const admin = fileOf(plan, 'master', PATHS.adminKubeconfig)!;
    const root = fileOf(plan, 'master', PATHS.rootKubeconfig)!;
    expect(root.content).toBe(admin.content);
    expect(root.mode).toBe(0o600);
    expect(fileOf(plan, 'minion1', PATHS.rootKubeconfig)).toBeUndefined();
    expect(fileOf(plan, 'master', PATHS.artifacts)!.content).toMatch(/\tkubernetes\/server\/bin\/kubectl\t\/usr\/local\/bin\/kubectl$/m);
  });
});

describe('air-gapped images', () => {
  const online = planOf();
  const airGapped = planOf({ binaries: { dir: './binaries' }, 'versions.images.smoke': { image: 'kube-ipsec.test/smoke:1', id: `sha256:${'ab'.repeat(32)}` } });

  it('are named in artifacts.tsv of the nodes that run pods, with the pinned image ID or -', () => {
    const tsv = fileOf(airGapped, 'minion1', PATHS.artifacts)!.content;
    expect(tsv).toContain(`image:registry.k8s.io/pause:3.10.2\t-\tpause-3.10.2.tar\t${PATHS.imagesDir}/pause-3.10.2.tar\n`);
    expect(tsv).toContain(`image:registry.k8s.io/coredns/coredns:v1.14.6\t-\tcoredns-v1.14.6.tar\t${PATHS.imagesDir}/coredns-v1.14.6.tar\n`);
    expect(tsv).toContain(`image:kube-ipsec.test/smoke:1\tsha256:${'ab'.repeat(32)}\tsmoke-1.tar\t${PATHS.imagesDir}/smoke-1.tar\n`);
    expect(fileOf(airGapped, 'master', PATHS.artifacts)!.content).not.toMatch(/^image:/m);
    expect(fileOf(online, 'minion1', PATHS.artifacts)!.content).not.toMatch(/^image:/m);
  });

  it('are loaded into the runtime by a unit ordered after it and before the kubelet', () => {
    const unit = fileOf(airGapped, 'minion1', `${PATHS.systemdDir}/${UNITS.images}`)!.content;
    expect(unit).toMatch(/^Requires=docker\.service$/m);
    expect(unit).toMatch(/^Before=kubelet\.service$/m);
    const kubelet = fileOf(airGapped, 'minion1', `${PATHS.systemdDir}/${UNITS.kubelet}`)!.content;
    expect(kubelet).toMatch(/^After=.* kube-ipsec-images\.service$/m);
    expect(fileOf(airGapped, 'minion1', PATHS.nodeEnv)!.content).toMatch(
      /UNITS=".*cri-docker\.service kube-ipsec-images\.service kubelet\.service kube-proxy\.service"/,
    );
    const containerd = planOf({ binaries: { dir: './binaries' }, runtime: 'containerd' });
    expect(fileOf(containerd, 'minion1', `${PATHS.systemdDir}/${UNITS.images}`)!.content).toMatch(/^Requires=containerd\.service$/m);
    expect(fileOf(containerd, 'minion1', PATHS.imagesScript)!.content).toMatch(/ctr_ images import --platform linux\/amd64/);
    expect(fileOf(online, 'minion1', `${PATHS.systemdDir}/${UNITS.images}`)).toBeUndefined();
    expect(fileOf(online, 'minion1', `${PATHS.systemdDir}/${UNITS.kubelet}`)!.content).not.toMatch(/kube-ipsec-images/);
  });

  it('a changed archive re-runs the loader only', () => {
    const rules = parseRestartMap(fileOf(airGapped, 'minion1', PATHS.restartMap)!.content);
    const affected = (...paths: string[]) => affectedUnits(rules, new Set(paths)).map((a) => `${a.action} ${a.unit}`);
    expect(affected(`${PATHS.imagesDir}/coredns-v1.14.6.tar`)).toEqual([`restart ${UNITS.images}`]);
    expect(affected(PATHS.imagesList)).toEqual([`restart ${UNITS.images}`]);
  });
});
