// One source of truth: parse every rendered file the way its daemon would, and check that
// every CIDR, address and name in it agrees with the plan and with the other files. These
// are the mismatches that break clusters in the field (a SAN missing a service name, the
// VIP in the certificate differing from --service-cluster-ip-range, CNI subnets that do
// not match the IPsec selectors…).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { cidr, contains, parseIpv4 } from '../../src/plan/ipv4.ts';
import { PATHS, UNITS, ipsecCertPath, ipsecKeyPath } from '../../src/plan/paths.ts';
import type { Plan } from '../../src/plan/plan.ts';
import type { PkiMaterials } from '../../src/pki/issue.ts';
import { readCertificate } from '../../src/pki/x509.ts';
import type { RenderedCluster } from '../../src/render/index.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';
import { execStart, fileAt, flagValue, ipsecConns, shellVars } from '../helpers/parse.ts';

const unitPath = (name: string) => `${PATHS.systemdDir}/${name}`;
const host = (url: string) => new URL(url).hostname;

for (const [label, edits] of [
  ['default cluster', {}],
  [
    'psk, containerd, other ranges',
    {
      'ipsec.auth': 'psk',
      runtime: 'containerd',
      'network.podCidr': '172.20.0.0/16',
      'network.serviceCidr': '10.96.0.0/16',
      'network.clusterDns': '10.96.0.10',
      'cluster.domain': 'lab.example',
    },
  ],
] as const) {
  describe(`rendered files agree with the plan and each other (${label})`, () => {
    let plan: Plan;
    let pki: PkiMaterials;
    let cluster: RenderedCluster;
    const files = (node: string) => cluster.nodes.get(node)!;
    const read = (node: string, path: string) => fileAt(files(node), path).content;

    beforeAll(async () => {
      plan = makePlan(edits);
      pki = await issuePki(plan);
      cluster = renderCluster(plan, pki, loadTemplates());
    });

    it('service range: apiserver flag = controller-manager flag, and its first address is in the serving cert', () => {
      const api = read('master', unitPath(UNITS.apiserver));
      const range = flagValue(api, 'service-cluster-ip-range');
      expect(range).toBe(plan.network.serviceCidr);
      expect(flagValue(read('master', unitPath(UNITS.controllerManager)), 'service-cluster-ip-range')).toBe(range);
      const cert = readCertificate(read('master', flagValue(api, 'tls-cert-file')));
      const firstIp = cidr(range).base + 1;
      expect(cert.ipAddresses.map((ip) => parseIpv4(ip))).toContain(firstIp);
      expect(cert.dnsNames).toEqual(
        expect.arrayContaining(['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${plan.cluster.domain}`]),
      );
      expect(cert.ipAddresses).toContain(flagValue(api, 'advertise-address'));
    });

    it('cluster DNS and domain: kubelet config inside the service range', () => {
      for (const m of plan.minions) {
        const kubelet = parseYaml(read(m.name, PATHS.kubeletConfig));
        expect(kubelet.clusterDNS).toEqual([plan.network.clusterDns]);
        expect(contains(cidr(plan.network.serviceCidr), parseIpv4(kubelet.clusterDNS[0])!)).toBe(true);
        expect(kubelet.clusterDomain).toBe(plan.cluster.domain);
      }
    });

    it('pod range: kube-proxy clusterCIDR = node-network POD_CIDR = the blackhole route', () => {
      for (const n of plan.nodes) {
        const vars = shellVars(read(n.name, PATHS.nodeNetworkScript));
        expect(vars.POD_CIDR).toBe(plan.network.podCidr);
        if (n.runsPods) expect(parseYaml(read(n.name, PATHS.kubeProxyConfig)).clusterCIDR).toBe(vars.POD_CIDR);
      }
    });

    it("each node subnet: CNI subnet = bridge address = IPsec left selector = every peer's right selector", () => {
      for (const n of plan.nodes) {
        const vars = shellVars(read(n.name, PATHS.nodeNetworkScript));
        const conns = ipsecConns(read(n.name, PATHS.ipsecConf));
        expect(vars.NODE_SUBNET).toBe(n.podSubnet);
        expect(vars.GATEWAY).toBe(n.gatewayCidr);
        expect(conns.get('%default')!.leftsubnet).toBe(n.podSubnet);
        expect(conns.get('%default')!.left).toBe(n.ip);
        if (n.runsPods) {
          const cni = JSON.parse(read(n.name, PATHS.cniConflist)).plugins[0];
          expect([cni.subnet, `${cni.gateway}/${n.podSubnet.split('/')[1]}`, cni.bridge]).toEqual([n.podSubnet, vars.GATEWAY, vars.BRIDGE]);
          expect(cni.mtu).toBe(plan.network.podMtu);
        }
        for (const peer of plan.nodes.filter((x) => x !== n)) {
          const peerConn = [...ipsecConns(read(peer.name, PATHS.ipsecConf)).values()].find((c) => c.right === n.ip)!;
          expect(peerConn.rightsubnet).toBe(n.podSubnet);
          expect(peerConn.rightid).toBe(conns.get('%default')!.leftid);
        }
      }
    });

    it('IKE identities are in the certificates that prove them', () => {
      if (plan.ipsec.auth !== 'pubkey') return;
      for (const n of plan.nodes) {
        const d = ipsecConns(read(n.name, PATHS.ipsecConf)).get('%default')!;
        const cert = readCertificate(read(n.name, ipsecCertPath(n.name)));
        expect(`${PATHS.ipsecCertDir}/${d.leftcert}`).toBe(ipsecCertPath(n.name));
        expect(cert.dnsNames).toContain(d.leftid!.replace(/^@/, ''));
        expect(read(n.name, PATHS.ipsecSecrets)).toContain(ipsecKeyPath(n.name).split('/').pop());
        expect(`CN=${readCertificate(pki.cas['ike-ca']!.cert).commonName}`).toBe(d.rightca);
        expect(read(n.name, PATHS.ipsecCaCert)).toBe(pki.cas['ike-ca']!.cert);
      }
    });

    it('kubeconfigs: the apiserver URL, the cluster CA, and the identity the API authorizes', () => {
      const check = (node: string, path: string, cn: string, org: string[]) => {
        const kc = parseYaml(read(node, path));
        const cluster = kc.clusters[0].cluster;
        expect(Buffer.from(cluster['certificate-authority-data'], 'base64').toString()).toBe(pki.cas.ca!.cert);
        expect([plan.apiserver.url, plan.apiserver.localUrl]).toContain(cluster.server);
        expect(plan.apiserver.sans.ips).toContain(host(cluster.server));
        const cert = readCertificate(Buffer.from(kc.users[0].user['client-certificate-data'], 'base64').toString());
        expect([cert.commonName, cert.organizations]).toEqual([cn, org]);
        // the embedded key belongs to the embedded certificate
        const key = createPrivateKey(Buffer.from(kc.users[0].user['client-key-data'], 'base64').toString());
        expect(new X509Certificate(Buffer.from(kc.users[0].user['client-certificate-data'], 'base64')).checkPrivateKey(key)).toBe(true);
      };
      check('master', PATHS.adminKubeconfig, 'kubernetes-admin', ['kubeadm:cluster-admins']);
      check('master', PATHS.superAdminKubeconfig, 'kubernetes-super-admin', ['system:masters']);
      check('master', PATHS.controllerManagerKubeconfig, 'system:kube-controller-manager', []);
      check('master', PATHS.schedulerKubeconfig, 'system:kube-scheduler', []);
      for (const m of plan.minions) {
        check(m.name, PATHS.kubeletKubeconfig, `system:node:${m.name}`, ['system:nodes']);
        check(m.name, PATHS.kubeProxyKubeconfig, 'system:kube-proxy', []);
        expect(parseYaml(read(m.name, PATHS.kubeletKubeconfig)).clusters[0].cluster.server).toBe(plan.apiserver.url);
      }
    });

    it('kubelet: serving cert for its --node-ip and name; the apiserver verifies it with the same CA', () => {
      for (const m of plan.minions) {
        const unit = read(m.name, unitPath(UNITS.kubelet));
        const cfg = parseYaml(read(m.name, PATHS.kubeletConfig));
        const cert = readCertificate(read(m.name, cfg.tlsCertFile));
        expect(cert.ipAddresses).toEqual([flagValue(unit, 'node-ip')]);
        expect(cert.dnsNames).toEqual([flagValue(unit, 'hostname-override')]);
        expect(read(m.name, cfg.authentication.x509.clientCAFile)).toBe(pki.cas.ca!.cert);
      }
      expect(read('master', flagValue(read('master', unitPath(UNITS.apiserver)), 'kubelet-certificate-authority'))).toBe(pki.cas.ca!.cert);
    });

    it('etcd: every URL it serves is covered by its certificate; the apiserver dials one of them', () => {
      const etcd = read('master', unitPath(UNITS.etcd));
      const serverCert = readCertificate(read('master', flagValue(etcd, 'cert-file')));
      const peerCert = readCertificate(read('master', flagValue(etcd, 'peer-cert-file')));
      for (const url of flagValue(etcd, 'listen-client-urls').split(',')) expect(serverCert.ipAddresses).toContain(host(url));
      for (const url of flagValue(etcd, 'initial-advertise-peer-urls').split(',')) expect(peerCert.ipAddresses).toContain(host(url));
      const dialed = flagValue(read('master', unitPath(UNITS.apiserver)), 'etcd-servers');
      expect(flagValue(etcd, 'listen-client-urls').split(',')).toContain(dialed);
      expect(flagValue(etcd, 'initial-cluster')).toBe(`${plan.master.name}=${flagValue(etcd, 'initial-advertise-peer-urls')}`);
    });

    it('every file a unit or config names is rendered on that node (or installed by provisioning)', () => {
      for (const [node, list] of cluster.nodes) {
        const present = new Set(list.map((f) => f.path));
        const installed = new Set(
          read(node, PATHS.artifacts)
            .split('\n')
            .filter((l) => l && !l.startsWith('#'))
            .map((l) => l.split('\t')[3]!),
        );
        for (const f of list.filter((x) => x.path.endsWith('.service'))) {
          const { binary, flags } = execStart(f.content);
          expect(installed.has(binary) || present.has(binary) || binary.startsWith('/usr/sbin/'), `${node}: ${binary}`).toBe(true);
          for (const [, value] of flags)
            if (/^\/(etc|var)\/.*\.(crt|key|pub|conf|yaml|toml)$/.test(value)) expect(present.has(value), `${node} ${f.path} names ${value}`).toBe(true);
        }
      }
    });
  });
}
