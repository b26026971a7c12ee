// Where things live on a node. Renderers, provision scripts and the lab take paths from
// here, so a file is never written to one place and looked for in another.

const PKI_DIR = '/etc/kubernetes/pki';

export const PATHS = {
  pkiDir: PKI_DIR,
  caCert: `${PKI_DIR}/ca.crt`,
  caKey: `${PKI_DIR}/ca.key`,
  apiserverCert: `${PKI_DIR}/apiserver.crt`,
  apiserverKey: `${PKI_DIR}/apiserver.key`,
  apiserverKubeletClientCert: `${PKI_DIR}/apiserver-kubelet-client.crt`,
  apiserverKubeletClientKey: `${PKI_DIR}/apiserver-kubelet-client.key`,
  apiserverEtcdClientCert: `${PKI_DIR}/apiserver-etcd-client.crt`,
  apiserverEtcdClientKey: `${PKI_DIR}/apiserver-etcd-client.key`,
  serviceAccountKey: `${PKI_DIR}/sa.key`,
  serviceAccountPub: `${PKI_DIR}/sa.pub`,
  etcdCaCert: `${PKI_DIR}/etcd/ca.crt`,
  etcdServerCert: `${PKI_DIR}/etcd/server.crt`,
  etcdServerKey: `${PKI_DIR}/etcd/server.key`,
  etcdPeerCert: `${PKI_DIR}/etcd/peer.crt`,
  etcdPeerKey: `${PKI_DIR}/etcd/peer.key`,
  etcdHealthcheckClientCert: `${PKI_DIR}/etcd/healthcheck-client.crt`,
  etcdHealthcheckClientKey: `${PKI_DIR}/etcd/healthcheck-client.key`,
  etcdDataDir: '/var/lib/etcd',
  frontProxyCaCert: `${PKI_DIR}/front-proxy-ca.crt`,
  frontProxyClientCert: `${PKI_DIR}/front-proxy-client.crt`,
  frontProxyClientKey: `${PKI_DIR}/front-proxy-client.key`,
  /** The API server's EncryptionConfiguration: the keys of Secrets at rest (0600, master only). */
  encryptionConfig: '/etc/kubernetes/encryption-config.yaml',
  auditPolicy: '/etc/kubernetes/audit-policy.yaml',
  auditLog: '/var/log/kubernetes/audit/audit.log',

  /** kubeadm:cluster-admins: cluster-admin through a ClusterRoleBinding (revocable). */
  adminKubeconfig: '/etc/kubernetes/admin.conf',
  /** system:masters, break-glass: on the master only, 0600; bootstraps admin.conf's binding. */
  superAdminKubeconfig: '/etc/kubernetes/super-admin.conf',
  controllerManagerKubeconfig: '/etc/kubernetes/controller-manager.conf',
  schedulerKubeconfig: '/etc/kubernetes/scheduler.conf',
  schedulerConfig: '/etc/kubernetes/kube-scheduler.yaml',
  kubeletKubeconfig: '/etc/kubernetes/kubelet.conf',
  kubeProxyKubeconfig: '/etc/kubernetes/kube-proxy.conf',

  /** kubectl's default kubeconfig for root on the master: the admin credential (0600). */
  rootKubeconfig: '/root/.kube/config',
  /** Cluster add-ons (CoreDNS, RBAC), applied by kube-ipsec-addons.service on the master. */
  addonsDir: '/etc/kubernetes/addons',
  addonsScript: '/usr/local/lib/kube-ipsec/apply-addons',
  /** Digest of the encryption configuration every Secret was last rewritten under (by the add-ons unit). */
  secretsRewrittenStamp: '/var/lib/kube-ipsec/secrets-encryption.sha256',
  /** Image archives of an air-gapped install, loaded into the runtime before the kubelet starts. */
  imagesDir: '/var/lib/kube-ipsec/images',
  imagesList: '/etc/kube-ipsec/images.tsv',
  imagesScript: '/usr/local/lib/kube-ipsec/load-images',

  kubeletConfig: '/var/lib/kubelet/config.yaml',
  kubeletResolvConfScript: '/usr/local/lib/kube-ipsec/kubelet-resolv-conf',
  kubeletResolvConf: '/run/kube-ipsec/resolv.conf',
  kubeletServingCert: '/var/lib/kubelet/pki/kubelet.crt',
  kubeletServingKey: '/var/lib/kubelet/pki/kubelet.key',
  kubeProxyConfig: '/var/lib/kube-proxy/config.yaml',

  binDir: '/usr/local/bin',
  cniBinDir: '/opt/cni/bin',
  /** Debian's containernetworking-plugins (loopback, host-local, …). */
  debianCniBinDir: '/usr/lib/cni',
  cniPlugin: '/opt/cni/bin/ipsec-cni',
  cniConfDir: '/etc/cni/net.d',
  cniConflist: '/etc/cni/net.d/10-kube-ipsec.conflist',
  cniDataDir: '/var/lib/cni/ipsec-cni',
  cniLogFile: '/var/log/ipsec-cni.log',

  ipsecConf: '/etc/ipsec.conf',
  ipsecSecrets: '/etc/ipsec.secrets',
  strongswanConf: '/etc/strongswan.conf',
  /** The IKE CA: the only CA strongSwan trusts (and nothing else trusts it). */
  ipsecCaCert: '/etc/ipsec.d/cacerts/kube-ipsec-ike-ca.pem',
  /** While the IKE CA is being replaced: the one the nodes trusted before. */
  ipsecPreviousCaCert: '/etc/ipsec.d/cacerts/kube-ipsec-ike-ca-previous.pem',
  ipsecCertDir: '/etc/ipsec.d/certs',
  ipsecKeyDir: '/etc/ipsec.d/private',

  nodeNetworkScript: '/usr/local/lib/kube-ipsec/node-network',
  /** The pod network's nftables table (pod-source NAT and the guard), loaded by the script. */
  nodeNetworkRules: '/etc/kube-ipsec/node-network.nft',
  /** Holds new IKE_SAs off while charon loads its connections (strongSwan's start and reload). */
  ikeGateScript: '/usr/local/lib/kube-ipsec/ike-gate',
  nodeEnv: '/etc/kube-ipsec/node.env',
  artifacts: '/etc/kube-ipsec/artifacts.tsv',
  /** Every file kube-ipsec installs on the node, with its mode (what provision/apply installs). */
  filesManifest: '/etc/kube-ipsec/files.tsv',
  /** Which unit restarts or reloads when which installed file changes (provision/apply reads it). */
  restartMap: '/etc/kube-ipsec/restart.tsv',
  /** provision/ state: installed manifest, open transaction, previous generation, staging. */
  provisionStateDir: '/var/lib/kube-ipsec',
  /** Verified release archives, content-addressed (provision/install-binaries). */
  archiveCache: '/var/cache/kube-ipsec/archives',
  sysctl: '/etc/sysctl.d/90-kube-ipsec.conf',
  modulesLoad: '/etc/modules-load.d/kube-ipsec.conf',
  systemdDir: '/etc/systemd/system',

  dockerSocket: '/run/docker.sock',
  criDockerdSocket: '/run/cri-dockerd.sock',
  containerdSocket: '/run/containerd/containerd.sock',
  containerdConfig: '/etc/containerd/config.toml',
} as const;

/** Units kube-ipsec renders, by name. */
export const UNITS = {
  nodeNetwork: 'kube-ipsec-network.service',
  strongswan: 'strongswan-starter.service',
  etcd: 'etcd.service',
  apiserver: 'kube-apiserver.service',
  controllerManager: 'kube-controller-manager.service',
  scheduler: 'kube-scheduler.service',
  kubelet: 'kubelet.service',
  kubeProxy: 'kube-proxy.service',
  docker: 'docker.service',
  criDockerService: 'cri-docker.service',
  criDockerSocket: 'cri-docker.socket',
  containerd: 'containerd.service',
  /** Loads the air-gapped image archives into the runtime (oneshot, before the kubelet). */
  images: 'kube-ipsec-images.service',
  /** Applies the cluster add-ons once the API server is ready (oneshot, master). */
  addons: 'kube-ipsec-addons.service',
  // The OS applies these files at boot; provisioning restarts them to apply a change now.
  modulesLoad: 'systemd-modules-load.service',
  sysctl: 'systemd-sysctl.service',
} as const;

export function ipsecCertPath(node: string): string {
  return `${PATHS.ipsecCertDir}/${node}.pem`;
}

export function ipsecKeyPath(node: string): string {
  return `${PATHS.ipsecKeyDir}/${node}.key`;
}

/** The node's certificate from the previous IKE CA, while that one is being replaced. */
export function ipsecPreviousCertPath(node: string): string {
  return `${PATHS.ipsecCertDir}/${node}-previous.pem`;
}

export function ipsecPreviousKeyPath(node: string): string {
  return `${PATHS.ipsecKeyDir}/${node}-previous.key`;
}
