// Versioned configuration files of the components whose command-line flags are deprecated
// in favour of them (kubelet, kube-proxy, kube-scheduler).
import { stringify } from 'yaml';
import { PATHS } from '../plan/paths.ts';
import type { Plan } from '../plan/plan.ts';

const header = (text: string) => `# ${text}\n`;

export function kubeletConfiguration(plan: Plan, generated: string): string {
  const runtimeEndpoint = plan.runtime === 'docker' ? `unix://${PATHS.criDockerdSocket}` : `unix://${PATHS.containerdSocket}`;
  return (
    header(generated) +
    stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: PATHS.caCert },
      },
      authorization: { mode: 'Webhook' },
      clusterDomain: plan.cluster.domain,
      clusterDNS: [plan.network.clusterDns],
      // Written before each start by kubelet-resolv-conf: the node's resolvers without loopback ones.
      resolvConf: PATHS.kubeletResolvConf,
      containerRuntimeEndpoint: runtimeEndpoint,
      cgroupDriver: 'systemd',
      // Serving certificate from the cluster CA with the node IP, verified by the apiserver.
      tlsCertFile: PATHS.kubeletServingCert,
      tlsPrivateKeyFile: PATHS.kubeletServingKey,
      rotateCertificates: false,
      serverTLSBootstrap: false,
      readOnlyPort: 0,
      failSwapOn: true,
    })
  );
}

export function kubeProxyConfiguration(plan: Plan, nodeName: string, generated: string): string {
  return (
    header(generated) +
    stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: PATHS.kubeProxyKubeconfig },
      hostnameOverride: nodeName,
      mode: 'iptables',
      // Traffic to services from outside this range is masqueraded; pod traffic is not.
      clusterCIDR: plan.network.podCidr,
      // The mark of traffic kube-proxy masquerades (its default, written out): the node
      // network's nftables table matches the same bit (node-network.nft, pod-source-nat).
      iptables: { masqueradeBit: plan.network.masqueradeBit },
    })
  );
}

export function schedulerConfiguration(generated: string): string {
  return (
    header(generated) +
    stringify({
      apiVersion: 'kubescheduler.config.k8s.io/v1',
      kind: 'KubeSchedulerConfiguration',
      clientConnection: { kubeconfig: PATHS.schedulerKubeconfig },
      leaderElection: { leaderElect: true },
    })
  );
}
