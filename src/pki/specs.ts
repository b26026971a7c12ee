// What certificates the cluster needs, derived from the plan (pure). kubeadm's set, naming
// and trust domains (cmd/kubeadm/app/phases/certs/certlist.go): identities are what the API
// server authorizes (CN = user, O = groups), and each CA is trusted for one purpose only, so
// a certificate made for one purpose is worth nothing for another.
import type { Plan } from '../plan/plan.ts';

export type ExtendedUsage = 'serverAuth' | 'clientAuth' | 'ipsecIKE';

/** One certificate authority per trust domain. */
export type CaId = 'ca' | 'etcd-ca' | 'front-proxy-ca' | 'ike-ca';

export interface CaSpec {
  id: CaId;
  commonName: string;
  /**
   * Whether the master's tree receives the CA key. Only the cluster CA's goes there (the
   * controller manager signs kubelet CSRs with it); the others never leave the state dir.
   */
  keyOnMaster: boolean;
  /** Human description for reports and docs. */
  purpose: string;
}

export interface CertSpec {
  /** Stable id, also the file stem in the state dir: `apiserver`, `kubelet-client@minion1`. */
  id: string;
  /** The CA that signs it, which is the only one that vouches for it. */
  ca: CaId;
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  usages: ExtendedUsage[];
  /** Node whose tree receives the private key. */
  owner: string;
  /** Human description for reports. */
  purpose: string;
}

/** The cluster CA's id (also its file stem in the state dir, as before trust domains were split). */
export const CA_ID: CaId = 'ca';
export const IKE_CA_ID: CaId = 'ike-ca';

/** kubeadm's admin group (since v1.29): bound to cluster-admin by a ClusterRoleBinding of the same name, so RBAC can revoke it. */
export const CLUSTER_ADMINS_GROUP = 'kubeadm:cluster-admins';
/** Bound to cluster-admin by the API server itself, irrevocably: the break-glass credential only. */
export const SUPER_ADMIN_GROUP = 'system:masters';

/** User names the rendered certificates carry, as kubeadm names them. */
export const IDENTITY = {
  apiserver: 'kube-apiserver',
  /** The API server's identity towards kubelets (logs, exec, port-forward); the add-ons bind it. */
  apiserverKubeletClient: 'kube-apiserver-kubelet-client',
  apiserverEtcdClient: 'kube-apiserver-etcd-client',
  etcdHealthcheckClient: 'kube-etcd-healthcheck-client',
  /** The aggregation layer's proxy; the API server accepts request headers from this name only. */
  frontProxyClient: 'front-proxy-client',
  admin: 'kubernetes-admin',
  superAdmin: 'kubernetes-super-admin',
  controllerManager: 'system:kube-controller-manager',
  scheduler: 'system:kube-scheduler',
  kubeProxy: 'system:kube-proxy',
} as const;

/**
 * Node names a node may not have, and why: a node's name becomes the CN of its IKE
 * certificate and a DNS name in its kubelet serving certificate, so a node named like one of
 * the identities above, or like a name the API server's certificate proves, would hold a
 * certificate that speaks for it. (Names with a colon, like system:*, are not DNS labels and
 * cannot be node names at all.) A test keeps this list complete against certSpecs and the
 * add-ons' RBAC subjects.
 */
export const RESERVED_NODE_NAMES: ReadonlyMap<string, string> = new Map([
  [IDENTITY.apiserver, "the API server's identity"],
  [IDENTITY.apiserverKubeletClient, "the API server's identity towards kubelets (bound to system:kubelet-api-admin)"],
  [IDENTITY.apiserverEtcdClient, "the API server's etcd client identity"],
  [IDENTITY.etcdHealthcheckClient, "etcd's health-check client identity"],
  [IDENTITY.frontProxyClient, "the aggregation layer's identity (--requestheader-allowed-names)"],
  [IDENTITY.admin, "admin.conf's user"],
  [IDENTITY.superAdmin, "super-admin.conf's user"],
  ['kube-controller-manager', 'the controller manager (system:kube-controller-manager)'],
  ['kube-scheduler', 'the scheduler (system:kube-scheduler)'],
  ['kube-proxy', 'kube-proxy (system:kube-proxy)'],
  ['kubernetes', "a name in the API server's certificate (the kubernetes Service)"],
  ['localhost', "a name in the API server's and etcd's certificates"],
]);

export function caSpecs(plan: Plan): CaSpec[] {
  const name = plan.cluster.name;
  return [
    { id: CA_ID, commonName: `${name}-ca`, keyOnMaster: true, purpose: 'cluster CA: API server serving and clients, kubelets' },
    { id: 'etcd-ca', commonName: `${name}-etcd-ca`, keyOnMaster: false, purpose: 'etcd: its serving and peer certificates, and its two clients' },
    { id: 'front-proxy-ca', commonName: `${name}-front-proxy-ca`, keyOnMaster: false, purpose: 'aggregation layer: the front proxy client' },
    ...(plan.ipsec.auth === 'pubkey' ? [{ id: IKE_CA_ID, commonName: `${name}-ike-ca`, keyOnMaster: false, purpose: 'IKE identities of the IPsec mesh' }] : []),
  ];
}

export function caSpec(plan: Plan, id: CaId): CaSpec | undefined {
  return caSpecs(plan).find((c) => c.id === id);
}

export function certSpecs(plan: Plan): CertSpec[] {
  const m = plan.master;
  const localhost = { dns: [m.name, 'localhost'], ips: [m.ip, '127.0.0.1'] };
  // etcd serves clients and peers with certificates of the same shape (kubeadm's): both
  // usages, because etcd also dials its peers with them.
  const etcd = (id: string, purpose: string): CertSpec => ({
    id,
    ca: 'etcd-ca',
    commonName: m.name,
    organizations: [],
    dnsNames: localhost.dns,
    ipAddresses: localhost.ips,
    usages: ['serverAuth', 'clientAuth'],
    owner: m.name,
    purpose,
  });
  const specs: CertSpec[] = [
    etcd('etcd-server', 'etcd client-facing TLS'),
    etcd('etcd-peer', 'etcd peer TLS'),
    client('etcd-ca', 'apiserver-etcd-client', IDENTITY.apiserverEtcdClient, [], m.name, 'kube-apiserver → etcd'),
    client('etcd-ca', 'etcd-healthcheck-client', IDENTITY.etcdHealthcheckClient, [], m.name, 'health checks → etcd'),
    {
      id: 'apiserver',
      ca: CA_ID,
      commonName: IDENTITY.apiserver,
      organizations: [],
      dnsNames: plan.apiserver.sans.dns,
      ipAddresses: plan.apiserver.sans.ips,
      usages: ['serverAuth'],
      owner: m.name,
      purpose: 'kube-apiserver serving',
    },
    // No group: its rights come from the add-ons' binding to system:kubelet-api-admin alone.
    client(CA_ID, 'apiserver-kubelet-client', IDENTITY.apiserverKubeletClient, [], m.name, 'kube-apiserver → kubelet (logs, exec)'),
    client('front-proxy-ca', 'front-proxy-client', IDENTITY.frontProxyClient, [], m.name, 'kube-apiserver → aggregated API servers'),
    client(CA_ID, 'admin', IDENTITY.admin, [CLUSTER_ADMINS_GROUP], m.name, 'cluster administrator (admin.conf)'),
    client(CA_ID, 'super-admin', IDENTITY.superAdmin, [SUPER_ADMIN_GROUP], m.name, 'break-glass administrator (super-admin.conf)'),
    client(CA_ID, 'controller-manager', IDENTITY.controllerManager, [], m.name, 'kube-controller-manager → apiserver'),
    client(CA_ID, 'scheduler', IDENTITY.scheduler, [], m.name, 'kube-scheduler → apiserver'),
  ];
  for (const n of plan.minions) {
    specs.push(
      client(CA_ID, `kubelet-client@${n.name}`, `system:node:${n.name}`, ['system:nodes'], n.name, `kubelet on ${n.name} → apiserver`),
      {
        id: `kubelet-serving@${n.name}`,
        ca: CA_ID,
        commonName: `system:node:${n.name}`,
        organizations: ['system:nodes'],
        dnsNames: [n.name],
        ipAddresses: [n.ip],
        usages: ['serverAuth'],
        owner: n.name,
        purpose: `kubelet on ${n.name} serving (apiserver → kubelet)`,
      },
      // One kube-proxy identity per node, so no two nodes hold the same private key.
      client(CA_ID, `kube-proxy@${n.name}`, IDENTITY.kubeProxy, [], n.name, `kube-proxy on ${n.name} → apiserver`),
    );
  }
  if (plan.ipsec.auth === 'pubkey') {
    for (const n of plan.nodes) {
      // IKE only: from the IKE CA, which nothing but strongSwan trusts, and with the IPsec
      // purpose alone, so it is no TLS client or server certificate either (strongSwan checks
      // no EKU; RFC 4945 peers that do look for id-kp-ipsecIKE).
      specs.push({
        id: ipsecCertId(n.name),
        ca: IKE_CA_ID,
        commonName: n.name,
        organizations: [plan.cluster.name],
        dnsNames: [n.name],
        ipAddresses: [n.ip],
        usages: ['ipsecIKE'],
        owner: n.name,
        purpose: `IKE identity ${n.ipsecId}`,
      });
    }
  }
  return specs;
}

export function ipsecCertId(node: string): string {
  return `ipsec@${node}`;
}

function client(ca: CaId, id: string, commonName: string, organizations: string[], owner: string, purpose: string): CertSpec {
  return { id, ca, commonName, organizations, dnsNames: [], ipAddresses: [], usages: ['clientAuth'], owner, purpose };
}

/** Pre-shared keys: one per tunnel, named by the pair, held only by its two nodes. */
export function pskIds(plan: Plan): string[] {
  return plan.ipsec.auth === 'psk' ? plan.tunnels.map((t) => pskId(t.a, t.b)) : [];
}

export function pskId(a: string, b: string): string {
  const [x, y] = [a, b].sort();
  return `ipsec-psk@${x}--${y}`;
}
