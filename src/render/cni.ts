// The node's CNI network: one ipsec-cni network per node, addressing its own pod subnet.
import type { IpsecCniConfList } from '../cni/netconf.ts';
import { PATHS } from '../plan/paths.ts';
import type { Plan, PlannedNode } from '../plan/plan.ts';

/**
 * The version a runtime that predates CNI 1.1 reads: cri-dockerd 0.3.17 vendors libcni 1.1.2,
 * which refuses a list at 1.1.0 ("unsupported CNI result version"). Runtimes with libcni ≥ 1.2
 * read `cniVersions` and use the highest they support, 1.1.0 (STATUS, GC).
 */
const CNI_VERSION = '1.0.0';
const CNI_VERSIONS = ['1.0.0', '1.1.0'];

export function cniConflist(plan: Plan, node: PlannedNode): string {
  const conflist: IpsecCniConfList = {
    cniVersion: CNI_VERSION,
    cniVersions: CNI_VERSIONS,
    name: plan.cluster.name,
    plugins: [
      {
        type: 'ipsec-cni',
        bridge: plan.network.bridge,
        subnet: node.podSubnet,
        gateway: node.gateway,
        // Underlay MTU minus ESP overhead: pods never send what the tunnel cannot carry.
        mtu: plan.network.podMtu,
        isDefaultGateway: true,
        // A pod reaching itself through a service VIP comes back over its own port.
        hairpinMode: true,
        dataDir: PATHS.cniDataDir,
        logFile: PATHS.cniLogFile,
      },
    ],
  };
  return JSON.stringify(conflist, null, 2) + '\n';
}
