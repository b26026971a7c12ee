// kube-proxy's iptables layout for services, for the checks to reach pods the way service
// traffic does — kube-proxy itself cannot run here (no Kubernetes binaries), so its rules are
// copied: the shapes, order and mark of pkg/proxy/iptables/proxier.go (v1.35, iptables mode):
//
//   - jumps from PREROUTING and OUTPUT to KUBE-SERVICES, from POSTROUTING to KUBE-POSTROUTING
//     and from FORWARD to KUBE-FORWARD, each *prepended* (iptablesJumpChain, EnsureRule with
//     Prepend): kube-proxy starts after kube-ipsec-network.service and goes first;
//   - KUBE-MARK-MASQ sets the masquerade bit (--iptables-masquerade-bit, default 14: 0x4000);
//   - KUBE-POSTROUTING returns unless the bit is set, clears it, and MASQUERADEs --random-fully;
//   - KUBE-SERVICES: "<svc> cluster IP" → KUBE-SVC-…, and last, for local destinations,
//     KUBE-NODEPORTS; a NodePort with externalTrafficPolicy: Cluster goes KUBE-NODEPORTS →
//     KUBE-EXT-… (mark for masquerade) → KUBE-SVC-… → KUBE-SEP-… (DNAT to the endpoint pod);
//   - KUBE-SVC-… (the internal traffic chain) marks cluster-IP traffic for masquerade: all of
//     it with masqueradeAll (the seeds' --masquerade-all), else what comes from outside the
//     cluster CIDR (`! -s <podCidr>`, the local detector);
//   - KUBE-FORWARD drops conntrack INVALID, accepts marked and established traffic.
//
// The chains are named KICHK-… instead of KUBE-…, so that a check on a cluster whose real
// kube-proxy runs never touches its chains; everything else is kube-proxy's. Pure: the
// iptables-restore input that installs them, and the script that removes them again.

import { KUBE_PROXY_MASQUERADE_BIT, masqueradeMark } from '../plan/plan.ts';

/** kube-proxy's masquerade mark (1 << --iptables-masquerade-bit), the bit the rendered KubeProxyConfiguration sets. */
const MASQUERADE_MARK = masqueradeMark(KUBE_PROXY_MASQUERADE_BIT);
const P = 'KICHK';

export interface ProxiedService {
  /** "namespace/name:port", as kube-proxy's comments have it. */
  name: string;
  clusterIp: { ip: string; port: number };
  nodePort: number;
  endpoint: { ip: string; port: number };
}

export interface ProxyMode {
  /** kube-proxy's masqueradeAll: every cluster-IP packet is marked for masquerade. */
  masqueradeAll: boolean;
  /** Its cluster CIDR (the local detector): cluster-IP traffic from outside it is marked. */
  clusterCidr: string;
}

const JUMPS = [
  { table: 'nat', from: 'PREROUTING', comment: 'kubernetes service portals', to: `${P}-SERVICES` },
  { table: 'nat', from: 'OUTPUT', comment: 'kubernetes service portals', to: `${P}-SERVICES` },
  { table: 'nat', from: 'POSTROUTING', comment: 'kubernetes postrouting rules', to: `${P}-POSTROUTING` },
  { table: 'filter', from: 'FORWARD', comment: 'kubernetes forwarding rules', to: `${P}-FORWARD` },
] as const;

const jump = (j: (typeof JUMPS)[number]) => `${j.from} -m comment --comment "${j.comment}" -j ${j.to}`;

function chains(services: ProxiedService[]): { nat: string[]; filter: string[] } {
  const perService = services.flatMap((_, i) => [`${P}-EXT-${i}`, `${P}-SVC-${i}`, `${P}-SEP-${i}`]);
  return { nat: [`${P}-SERVICES`, `${P}-NODEPORTS`, `${P}-POSTROUTING`, `${P}-MARK-MASQ`, ...perService], filter: [`${P}-FORWARD`] };
}

/** iptables-restore --noflush input that installs the services, jumps first in their chains. */
export function serviceRules(services: ProxiedService[], mode: ProxyMode): string {
  const c = chains(services);
  const nat = [
    '*nat',
    ...c.nat.map((name) => `:${name} - [0:0]`),
    ...JUMPS.filter((j) => j.table === 'nat').map((j) => `-I ${jump(j).replace(j.from, `${j.from} 1`)}`),
    `-A ${P}-MARK-MASQ -j MARK --or-mark ${MASQUERADE_MARK}`,
    `-A ${P}-POSTROUTING -m mark ! --mark ${MASQUERADE_MARK}/${MASQUERADE_MARK} -j RETURN`,
    `-A ${P}-POSTROUTING -j MARK --xor-mark ${MASQUERADE_MARK}`,
    `-A ${P}-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
    ...services.flatMap((s, i) => {
      const ep = `${s.endpoint.ip}:${s.endpoint.port}`;
      const clusterIp = `-m comment --comment "${s.name} cluster IP" -m tcp -p tcp -d ${s.clusterIp.ip}/32 --dport ${s.clusterIp.port}`;
      return [
        `-A ${P}-SERVICES ${clusterIp} -j ${P}-SVC-${i}`,
        `-A ${P}-NODEPORTS -m comment --comment "${s.name}" -m tcp -p tcp --dport ${s.nodePort} -j ${P}-EXT-${i}`,
        `-A ${P}-EXT-${i} -m comment --comment "masquerade traffic for ${s.name} external destinations" -j ${P}-MARK-MASQ`,
        `-A ${P}-EXT-${i} -j ${P}-SVC-${i}`,
        `-A ${P}-SVC-${i} ${clusterIp}${mode.masqueradeAll ? '' : ` ! -s ${mode.clusterCidr}`} -j ${P}-MARK-MASQ`,
        `-A ${P}-SVC-${i} -m comment --comment "${s.name} -> ${ep}" -j ${P}-SEP-${i}`,
        `-A ${P}-SEP-${i} -m comment --comment "${s.name}" -s ${s.endpoint.ip}/32 -j ${P}-MARK-MASQ`,
        `-A ${P}-SEP-${i} -m comment --comment "${s.name}" -m tcp -p tcp -j DNAT --to-destination ${ep}`,
      ];
    }),
    `-A ${P}-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j ${P}-NODEPORTS`,
    'COMMIT',
  ];
  const filter = [
    '*filter',
    `:${P}-FORWARD - [0:0]`,
    ...JUMPS.filter((j) => j.table === 'filter').map((j) => `-I ${jump(j).replace(j.from, `${j.from} 1`)}`),
    `-A ${P}-FORWARD -m conntrack --ctstate INVALID -j DROP`,
    `-A ${P}-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQUERADE_MARK}/${MASQUERADE_MARK} -j ACCEPT`,
    `-A ${P}-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    'COMMIT',
  ];
  return [...nat, ...filter, ''].join('\n');
}

/**
 * A shell script (sh -s) that removes what serviceRules installed, and nothing else: every jump
 * of ours however often it is there, then our chains. Each step may find nothing to remove
 * (a check that crashed half way, a second teardown), so none may fail the others.
 */
export function serviceRulesRemoval(services: ProxiedService[]): string {
  const c = chains(services);
  const lines = [
    ...JUMPS.map((j) => `while iptables -w -t ${j.table} -D ${jump(j)} 2>/dev/null; do :; done`),
    ...(['nat', 'filter'] as const).flatMap((table) => c[table].map((ch) => `iptables -w -t ${table} -F ${ch} 2>/dev/null`)),
    ...(['nat', 'filter'] as const).flatMap((table) => c[table].map((ch) => `iptables -w -t ${table} -X ${ch} 2>/dev/null`)),
    'true',
  ];
  return lines.join('\n') + '\n';
}
