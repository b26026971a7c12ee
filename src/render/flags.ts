// Command-line flags of every daemon kube-ipsec runs, derived from the plan. Only flags the
// pinned releases accept and do not deprecate (checked by a test against the reference flag
// lists); settings with a config-file home (kubelet, kube-proxy, scheduler) go there instead.
import { PATHS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';
import { IDENTITY } from '../pki/specs.ts';

export type Flag = readonly [name: string, value: string];

export function etcdFlags(plan: Plan): Flag[] {
  const m = plan.master;
  return [
    ['name', m.name],
    ['data-dir', PATHS.etcdDataDir],
    // The API server is etcd's only client, on the same node: nothing else can even connect.
    ['listen-client-urls', plan.etcd.clientUrl],
    ['advertise-client-urls', plan.etcd.clientUrl],
    ['listen-peer-urls', plan.etcd.peerUrl],
    ['initial-advertise-peer-urls', plan.etcd.peerUrl],
    ['initial-cluster', plan.etcd.members.map((e) => `${e.name}=${e.peerUrl}`).join(',')],
    ['initial-cluster-state', 'new'],
    ['initial-cluster-token', plan.cluster.name],
    ['cert-file', PATHS.etcdServerCert],
    ['key-file', PATHS.etcdServerKey],
    ['trusted-ca-file', PATHS.etcdCaCert],
    // Clients need a certificate from the etcd CA, which signs only the API server's and the
    // health check's (both on the master).
    ['client-cert-auth', 'true'],
    ['peer-cert-file', PATHS.etcdPeerCert],
    ['peer-key-file', PATHS.etcdPeerKey],
    ['peer-trusted-ca-file', PATHS.etcdCaCert],
    ['peer-client-cert-auth', 'true'],
    // Health and metrics without client certificates, on loopback only.
    ['listen-metrics-urls', 'http://127.0.0.1:2381'],
  ];
}

export function apiserverFlags(plan: Plan): Flag[] {
  return [
    ['advertise-address', plan.master.ip],
    ['secure-port', '6443'],
    ['allow-privileged', 'true'],
    ['authorization-mode', 'Node,RBAC'],
    ['enable-admission-plugins', 'NodeRestriction'],
    ['client-ca-file', PATHS.caCert],
    ['tls-cert-file', PATHS.apiserverCert],
    ['tls-private-key-file', PATHS.apiserverKey],
    ['etcd-servers', plan.etcd.clientUrl],
    ['etcd-cafile', PATHS.etcdCaCert],
    ['etcd-certfile', PATHS.apiserverEtcdClientCert],
    ['etcd-keyfile', PATHS.apiserverEtcdClientKey],
    // Aggregation layer (kubeadm's flags): requests proxied to extension API servers carry the
    // user in these headers, vouched for by the front-proxy client certificate; the API server
    // believes such headers only from that name, signed by the front-proxy CA.
    ['requestheader-client-ca-file', PATHS.frontProxyCaCert],
    ['requestheader-allowed-names', IDENTITY.frontProxyClient],
    ['requestheader-extra-headers-prefix', 'X-Remote-Extra-'],
    ['requestheader-group-headers', 'X-Remote-Group'],
    ['requestheader-username-headers', 'X-Remote-User'],
    ['proxy-client-cert-file', PATHS.frontProxyClientCert],
    ['proxy-client-key-file', PATHS.frontProxyClientKey],
    // Secrets are encrypted before they reach etcd (keys: encryption-config.yaml, master only).
    ['encryption-provider-config', PATHS.encryptionConfig],
    // Who did what: metadata of every request (audit-policy.yaml), rotated at 100 MB, ten
    // files or thirty days, whichever comes first.
    ['audit-policy-file', PATHS.auditPolicy],
    ['audit-log-path', PATHS.auditLog],
    ['audit-log-maxage', '30'],
    ['audit-log-maxbackup', '10'],
    ['audit-log-maxsize', '100'],
    ['kubelet-client-certificate', PATHS.apiserverKubeletClientCert],
    ['kubelet-client-key', PATHS.apiserverKubeletClientKey],
    // Kubelets serve certificates from the cluster CA for their node IP: verify them.
    ['kubelet-certificate-authority', PATHS.caCert],
    ['kubelet-preferred-address-types', 'InternalIP,Hostname'],
    // Must equal the range whose first address is in the serving certificate's SANs.
    ['service-cluster-ip-range', plan.network.serviceCidr],
    ['service-node-port-range', '30000-32767'],
    ['service-account-issuer', `https://kubernetes.default.svc.${plan.cluster.domain}`],
    ['service-account-key-file', PATHS.serviceAccountPub],
    ['service-account-signing-key-file', PATHS.serviceAccountKey],
    ['profiling', 'false'],
    // cri-dockerd cannot serve exec/attach/port-forward over the WebSocket streams the API
    // server speaks to kubelets ≥ 1.36 by default (Mirantis/cri-dockerd issue 569; minikube and
    // kubespray set the same): the API server keeps to SPDY towards the kubelet.
    ...(plan.runtime === 'docker' ? [['feature-gates', 'ExtendWebSocketsToKubelet=false'] as const] : []),
    ['v', '2'],
  ];
}

export function controllerManagerFlags(plan: Plan): Flag[] {
  const kubeconfig = PATHS.controllerManagerKubeconfig;
  return [
    ['kubeconfig', kubeconfig],
    ['authentication-kubeconfig', kubeconfig],
    ['authorization-kubeconfig', kubeconfig],
    ['bind-address', '127.0.0.1'],
    ['cluster-name', plan.cluster.name],
    // Signs kubelet CSRs; this is why the CA key lives on the master (and only there).
    ['cluster-signing-cert-file', PATHS.caCert],
    ['cluster-signing-key-file', PATHS.caKey],
    ['root-ca-file', PATHS.caCert],
    ['service-account-private-key-file', PATHS.serviceAccountKey],
    ['service-cluster-ip-range', plan.network.serviceCidr],
    ['use-service-account-credentials', 'true'],
    ['leader-elect', 'true'],
    // Pod subnets come from the plan and reach each node in its CNI config; letting the
    // controller hand out node.spec.podCIDR in registration order would contradict them.
    ['allocate-node-cidrs', 'false'],
    ['configure-cloud-routes', 'false'],
    ['profiling', 'false'],
    ['v', '2'],
  ];
}

export function schedulerFlags(): Flag[] {
  const kubeconfig = PATHS.schedulerKubeconfig;
  return [
    ['config', PATHS.schedulerConfig],
    ['authentication-kubeconfig', kubeconfig],
    ['authorization-kubeconfig', kubeconfig],
    ['bind-address', '127.0.0.1'],
    ['v', '2'],
  ];
}

export function kubeletFlags(node: PlannedNode): Flag[] {
  return [
    ['config', PATHS.kubeletConfig],
    ['kubeconfig', PATHS.kubeletKubeconfig],
    ['hostname-override', node.name],
    // VMs have a NAT interface first; the node's cluster address is the private network one.
    ['node-ip', node.ip],
    ['v', '2'],
  ];
}

export function kubeProxyFlags(): Flag[] {
  return [
    ['config', PATHS.kubeProxyConfig],
    ['v', '2'],
  ];
}

export function dockerdFlags(): Flag[] {
  return [
    ['host', 'fd://'],
    ['containerd', PATHS.containerdSocket],
    // Networking belongs to ipsec-cni and the node-network chains.
    ['iptables', 'false'],
    ['ip-masq', 'false'],
    ['bridge', 'none'],
    // The kubelet's default cgroup driver; both sides must agree.
    ['exec-opt', 'native.cgroupdriver=systemd'],
  ];
}

export function criDockerdFlags(plan: Plan): Flag[] {
  return [
    ['container-runtime-endpoint', 'fd://'],
    ['network-plugin', 'cni'],
    // ipsec-cni, then Debian's plugins (the loopback one every pod's lo needs).
    ['cni-bin-dir', `${PATHS.cniBinDir},${PATHS.debianCniBinDir}`],
    ['cni-conf-dir', PATHS.cniConfDir],
    // kubelet 1.35 dropped --pod-infra-container-image; the runtime owns the sandbox image.
    ['pod-infra-container-image', plan.images.pause.ref],
  ];
}

export function containerdFlags(): Flag[] {
  return [['config', PATHS.containerdConfig]];
}
