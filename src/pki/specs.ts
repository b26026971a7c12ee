// What certificates the cluster needs, derived from the plan (pure). kubeadm's set and
// naming: identities are what the API server authorizes (CN = user, O = groups).
import type { Plan } from '../plan/plan.ts';

export type ExtendedUsage = 'serverAuth' | 'clientAuth';

export interface CertSpec {
  /** Stable id, also the file stem in the state dir: `apiserver`, `kubelet-client@minion1`. */
  id: string;
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

export const CA_ID = 'ca';

export function caCommonName(plan: Plan): string {
  return `${plan.cluster.name}-ca`;
}

/** Members of system:masters are bound to cluster-admin by every Kubernetes release. */
export const ADMIN_GROUP = 'system:masters';

/** The API server's identity towards kubelets (logs, exec, port-forward); add-ons bind it too. */
export const APISERVER_KUBELET_CLIENT = 'kube-apiserver-kubelet-client';

export function certSpecs(plan: Plan): CertSpec[] {
  const m = plan.master;
  const localhost = { dns: [m.name, 'localhost'], ips: [m.ip, '127.0.0.1'] };
  // etcd serves clients and peers with certificates of the same shape; both usages
  // because etcd also dials its peers (and itself) with them.
  const etcd = (id: string, purpose: string): CertSpec => ({
    id,
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
    {
      id: 'apiserver-etcd-client',
      commonName: 'kube-apiserver-etcd-client',
      organizations: [],
      dnsNames: [],
      ipAddresses: [],
      usages: ['clientAuth'],
      owner: m.name,
      purpose: 'kube-apiserver → etcd',
    },
    {
      id: 'apiserver',
      commonName: 'kube-apiserver',
      organizations: [],
      dnsNames: plan.apiserver.sans.dns,
      ipAddresses: plan.apiserver.sans.ips,
      usages: ['serverAuth'],
      owner: m.name,
      purpose: 'kube-apiserver serving',
    },
    {
      id: 'apiserver-kubelet-client',
      commonName: APISERVER_KUBELET_CLIENT,
      organizations: [ADMIN_GROUP],
      dnsNames: [],
      ipAddresses: [],
      usages: ['clientAuth'],
      owner: m.name,
      purpose: 'kube-apiserver → kubelet (logs, exec)',
    },
    client('admin', 'kubernetes-admin', [ADMIN_GROUP], m.name, 'cluster administrator (admin.conf)'),
    client('controller-manager', 'system:kube-controller-manager', [], m.name, 'kube-controller-manager → apiserver'),
    client('scheduler', 'system:kube-scheduler', [], m.name, 'kube-scheduler → apiserver'),
  ];
  for (const n of plan.minions) {
    specs.push(
      client(`kubelet-client@${n.name}`, `system:node:${n.name}`, ['system:nodes'], n.name, `kubelet on ${n.name} → apiserver`),
      {
        id: `kubelet-serving@${n.name}`,
        commonName: `system:node:${n.name}`,
        organizations: ['system:nodes'],
        dnsNames: [n.name],
        ipAddresses: [n.ip],
        usages: ['serverAuth'],
        owner: n.name,
        purpose: `kubelet on ${n.name} serving (apiserver → kubelet)`,
      },
      // One kube-proxy identity per node, so no two nodes hold the same private key.
      client(`kube-proxy@${n.name}`, 'system:kube-proxy', [], n.name, `kube-proxy on ${n.name} → apiserver`),
    );
  }
  if (plan.ipsec.auth === 'pubkey') {
    for (const n of plan.nodes) {
      specs.push({
        id: `ipsec@${n.name}`,
        commonName: n.name,
        organizations: [plan.cluster.name],
        dnsNames: [n.name],
        ipAddresses: [n.ip],
        usages: ['serverAuth', 'clientAuth'],
        owner: n.name,
        purpose: `IKE identity ${n.ipsecId}`,
      });
    }
  }
  return specs;
}

function client(id: string, commonName: string, organizations: string[], owner: string, purpose: string): CertSpec {
  return { id, commonName, organizations, dnsNames: [], ipAddresses: [], usages: ['clientAuth'], owner, purpose };
}

/** Pre-shared keys: one per tunnel, named by the pair, held only by its two nodes. */
export function pskIds(plan: Plan): string[] {
  return plan.ipsec.auth === 'psk' ? plan.tunnels.map((t) => pskId(t.a, t.b)) : [];
}

export function pskId(a: string, b: string): string {
  const [x, y] = [a, b].sort();
  return `ipsec-psk@${x}--${y}`;
}
