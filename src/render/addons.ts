// Cluster add-ons, rendered from the plan (pure): CoreDNS serving network.clusterDns for
// cluster.domain, and the RBAC bindings the rendered identities do not get from the API
// server's default policy. Objects are typed with the Kubernetes API's own models
// (kubernetes-models, generated from the release's OpenAPI schema), so a misspelt field does
// not compile; a test validates every object against that schema as well.
//
// What the other identities rely on (the API server's bootstrap policy, which it reconciles
// at every start; nothing to render):
// - kubelets (CN system:node:<name>, O system:nodes): the Node authorizer and NodeRestriction;
// - kube-proxy (CN system:kube-proxy): ClusterRoleBinding system:node-proxier;
// - kube-controller-manager (CN system:kube-controller-manager): system:kube-controller-manager,
//   plus system:controller:* for each controller's service account
//   (--use-service-account-credentials), and the kube-system RoleBindings
//   system::leader-locking-kube-controller-manager and
//   system::extension-apiserver-authentication-reader;
// - kube-scheduler (CN system:kube-scheduler): system:kube-scheduler, system:volume-scheduler,
//   system::leader-locking-kube-scheduler, system::extension-apiserver-authentication-reader;
// - super-admin.conf (O system:masters, break-glass): cluster-admin, irrevocably.
// What they get from the bindings here: admin.conf (O kubeadm:cluster-admins) cluster-admin,
// the apiserver's kubelet client (no group) system:kubelet-api-admin.
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { stringify } from 'yaml';
import { PATHS } from '../plan/paths.ts';
import type { Plan } from '../plan/plan.ts';
import { CLUSTER_ADMINS_GROUP, IDENTITY } from '../pki/specs.ts';
import { file, type RenderedFile } from './files.ts';

type AddonObject = IServiceAccount | IClusterRole | IClusterRoleBinding | IConfigMap | IDeployment | IService;

/** Every object kube-ipsec applies carries this label (and the field manager of the same name). */
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'kube-ipsec' } as const;

/** CoreDNS replicas: two, so that one minion going away leaves name resolution up. */
export const COREDNS_REPLICAS = 2;
/** The Service keeps kubeadm's name, which tools and docs look for. */
const DNS_SERVICE = { namespace: 'kube-system', name: 'kube-dns' } as const;
const DNS_LABELS = { 'k8s-app': 'kube-dns' } as const;

/** CoreDNS's configuration for the cluster domain (kubeadm's Corefile, with the plan's domain). */
export function corefile(domain: string): string {
  return `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${domain} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
        max_concurrent 1000
    }
    cache 30 {
        disable success ${domain}
        disable denial ${domain}
    }
    loop
    reload
    loadbalance
}
`;
}

function corednsObjects(plan: Plan): AddonObject[] {
  const ns = DNS_SERVICE.namespace;
  const labels = { ...DNS_LABELS, ...MANAGED_BY };
  const serviceAccount: IServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns, labels } };
  const role: IClusterRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'system:coredns', labels },
    rules: [
      { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ],
  };
  const binding: IClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'system:coredns', labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
    subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
  };
  const config: IConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'coredns', namespace: ns, labels },
    data: { Corefile: corefile(plan.cluster.domain) },
  };
  const deployment: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'coredns', namespace: ns, labels },
    spec: {
      replicas: COREDNS_REPLICAS,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      selector: { matchLabels: { ...DNS_LABELS } },
      template: {
        metadata: { labels: { ...DNS_LABELS } },
        spec: {
          priorityClassName: 'system-cluster-critical',
          serviceAccountName: 'coredns',
          // One replica per minion while there are minions to spare; with fewer minions than
          // replicas they share (ScheduleAnyway), rather than leaving DNS down.
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { ...DNS_LABELS } } },
          ],
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { ...DNS_LABELS } } } },
              ],
            },
          },
          tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          // The node's resolver for names outside the cluster domain (forward . /etc/resolv.conf).
          dnsPolicy: 'Default',
          containers: [
            {
              name: 'coredns',
              image: plan.images.coredns.ref,
              // Air-gapped nodes have it loaded from its archive and can pull nothing.
              imagePullPolicy: 'IfNotPresent',
              args: ['-conf', '/etc/coredns/Corefile'],
              resources: { limits: { memory: '170Mi' }, requests: { cpu: '100m', memory: '70Mi' } },
              volumeMounts: [{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }],
              ports: [
                { name: 'dns', containerPort: 53, protocol: 'UDP' },
                { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
              ],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] }, readOnlyRootFilesystem: true },
              livenessProbe: {
                httpGet: { path: '/health', port: 8080, scheme: 'HTTP' },
                initialDelaySeconds: 60,
                timeoutSeconds: 5,
                successThreshold: 1,
                failureThreshold: 5,
              },
              readinessProbe: { httpGet: { path: '/ready', port: 8181, scheme: 'HTTP' } },
            },
          ],
          volumes: [{ name: 'config-volume', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } }],
        },
      },
    },
  };
  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: DNS_SERVICE.name,
      namespace: ns,
      labels: { ...labels, 'kubernetes.io/name': 'CoreDNS' },
      annotations: { 'prometheus.io/port': '9153', 'prometheus.io/scrape': 'true' },
    },
    spec: {
      selector: { ...DNS_LABELS },
      clusterIP: plan.network.clusterDns,
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'metrics', port: 9153, protocol: 'TCP' },
      ],
    },
  };
  return [serviceAccount, role, binding, config, deployment, service];
}

/**
 * admin.conf's group gets cluster-admin here (kubeadm's binding, name and all, since v1.29),
 * not from system:masters: an administrator can revoke it by deleting the binding. On a fresh
 * cluster admin.conf cannot create it (it has no rights before it exists): the add-on unit
 * applies this manifest with super-admin.conf first, when admin.conf cannot yet.
 */
function clusterAdminsObjects(): AddonObject[] {
  const binding: IClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: CLUSTER_ADMINS_GROUP, labels: { ...MANAGED_BY } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: CLUSTER_ADMINS_GROUP }],
  };
  return [binding];
}

/**
 * The API server reaches kubelets (logs, exec, attach, port-forward) as
 * kube-apiserver-kubelet-client; kubelets authorize it by a SubjectAccessReview on nodes/proxy
 * and friends. Its certificate carries no group: this binding (kubeadm's) grants it exactly
 * system:kubelet-api-admin, and nothing else.
 */
function rbacObjects(): AddonObject[] {
  const binding: IClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'kube-ipsec:apiserver-kubelet-api-admin', labels: { ...MANAGED_BY } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: IDENTITY.apiserverKubeletClient }],
  };
  return [binding];
}

export interface AddonManifest {
  path: string;
  objects: AddonObject[];
  /** Applied with super-admin.conf first when admin.conf cannot apply it yet (its own binding). */
  bootstrap?: boolean;
}

/** The add-on files in apply order: RBAC before what runs under it. */
export function addonManifests(plan: Plan): AddonManifest[] {
  return [
    { path: `${PATHS.addonsDir}/00-cluster-admins.yaml`, objects: clusterAdminsObjects(), bootstrap: true },
    { path: `${PATHS.addonsDir}/10-rbac.yaml`, objects: rbacObjects() },
    { path: `${PATHS.addonsDir}/20-coredns.yaml`, objects: corednsObjects(plan) },
  ];
}

export function addonFiles(plan: Plan, generated: string): RenderedFile[] {
  return addonManifests(plan).map((m) => file(m.path, `# ${generated}\n` + m.objects.map((o) => stringify(o)).join('---\n')));
}
