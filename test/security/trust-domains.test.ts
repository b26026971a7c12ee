// Issue 18, high: one CA trusted everything. Now each trust domain has its own CA and each
// consumer trusts only its own: a certificate a node holds for one purpose is worth nothing
// for another — above all, no minion credential opens etcd, and no IKE certificate is an API
// client (and no Kubernetes certificate authenticates IKE). Checked on real issued material
// by reading what each daemon would read: the CA files its flags and configs name.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../src/config/errors.ts';
import { parseCluster } from '../../src/config/load.ts';
import { ensurePki, PkiRequestError, type PkiMaterials } from '../../src/pki/issue.ts';
import { caSpecs, certSpecs, ipsecCertId, RESERVED_NODE_NAMES } from '../../src/pki/specs.ts';
import { memoryStore } from '../../src/pki/store.ts';
import { isSignedBy, readCertificate } from '../../src/pki/x509.ts';
import { ipsecCertPath, PATHS, UNITS } from '../../src/plan/paths.ts';
import type { Plan } from '../../src/plan/plan.ts';
import { addonManifests } from '../../src/render/addons.ts';
import type { RenderedFile } from '../../src/render/files.ts';
import { renderCluster, type RenderedCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { clusterYaml, FIXED_NOW, plan as makePlan } from '../helpers/cluster.ts';
import { legacyMemoryStore } from '../helpers/legacy-state.ts';
import { fileAt, flagValue, ipsecConns } from '../helpers/parse.ts';

const templates = loadTemplates();
const opts = (extra = {}) => ({ now: FIXED_NOW, random: (n: number) => crypto.getRandomValues(new Uint8Array(n)), ...extra });
const unit = (name: string) => `${PATHS.systemdDir}/${name}`;
const read = (cluster: RenderedCluster, node: string, path: string) => fileAt(cluster.nodes.get(node)!, path).content;
const pems = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];

/** Every leaf certificate a node holds with its key: certificate files and those in kubeconfigs. */
function heldCertificates(files: RenderedFile[]): { where: string; cert: X509Certificate }[] {
  const out: { where: string; cert: X509Certificate }[] = [];
  for (const f of files) {
    if (f.path.endsWith('.conf') && f.content.includes('client-certificate-data')) {
      const user = parseYaml(f.content).users[0].user;
      out.push({ where: `${f.path} (embedded)`, cert: new X509Certificate(Buffer.from(user['client-certificate-data'], 'base64')) });
    } else if (f.content.startsWith('-----BEGIN CERTIFICATE-----')) {
      const cert = new X509Certificate(f.content);
      if (!cert.ca) out.push({ where: f.path, cert });
    }
  }
  return out;
}

/** Who trusts which CAs, as each consumer reads them from the node it runs on. */
function trustAnchors(cluster: RenderedCluster, plan: Plan): Record<string, string[]> {
  const api = read(cluster, 'master', unit(UNITS.apiserver));
  const etcd = read(cluster, 'master', unit(UNITS.etcd));
  const kubeletConfig = parseYaml(read(cluster, plan.minions[0]!.name, PATHS.kubeletConfig));
  const cacertsOf = (node: string) =>
    cluster.nodes
      .get(node)!
      .filter((f) => f.path.startsWith('/etc/ipsec.d/cacerts/'))
      .flatMap((f) => pems(f.content));
  return {
    'API server (client certificates)': pems(read(cluster, 'master', flagValue(api, 'client-ca-file'))),
    'API server (front proxy)': pems(read(cluster, 'master', flagValue(api, 'requestheader-client-ca-file'))),
    'etcd (clients)': pems(read(cluster, 'master', flagValue(etcd, 'trusted-ca-file'))),
    'etcd (peers)': pems(read(cluster, 'master', flagValue(etcd, 'peer-trusted-ca-file'))),
    'kubelet (clients)': pems(read(cluster, plan.minions[0]!.name, kubeletConfig.authentication.x509.clientCAFile)),
    strongSwan: [...new Set(plan.nodes.flatMap((n) => cacertsOf(n.name)))],
  };
}

const verifiesAgainst = (cert: X509Certificate, anchors: string[]) => anchors.some((ca) => isSignedBy(cert, ca));

describe.each([
  ['a new cluster', () => memoryStore()],
  ['a cluster migrated from one CA, after --retire ike-ca', () => legacyMemoryStore()],
])('trust domains (%s)', (_, store) => {
  let plan: Plan;
  let pki: PkiMaterials;
  let cluster: RenderedCluster;
  let anchors: Record<string, string[]>;

  beforeAll(async () => {
    plan = makePlan();
    const s = store();
    await ensurePki(plan, s, opts());
    pki = (await ensurePki(plan, s, opts({ retire: s.read('ike-ca.previous') ? ['ike-ca'] : [] }))).materials;
    cluster = renderCluster(plan, pki, templates);
    anchors = trustAnchors(cluster, plan);
  });

  it('no credential a minion holds is accepted by etcd', () => {
    for (const m of plan.minions) {
      for (const { where, cert } of heldCertificates(cluster.nodes.get(m.name)!)) {
        expect(verifiesAgainst(cert, anchors['etcd (clients)']!), `${m.name}:${where}`).toBe(false);
        expect(verifiesAgainst(cert, anchors['etcd (peers)']!), `${m.name}:${where}`).toBe(false);
      }
    }
  });

  it("etcd accepts the API server's etcd client and the health check, and nothing else on the master", () => {
    const accepted = heldCertificates(cluster.nodes.get('master')!)
      .filter(({ cert }) => verifiesAgainst(cert, anchors['etcd (clients)']!) && readCertificate(cert).usages.includes('clientAuth'))
      .map(({ where }) => where);
    expect(accepted.sort()).toEqual([PATHS.apiserverEtcdClientCert, PATHS.etcdHealthcheckClientCert, PATHS.etcdPeerCert, PATHS.etcdServerCert].sort());
  });

  it('an IKE certificate is trusted by strongSwan only, and carries the IPsec purpose only (no clientAuth, no serverAuth)', () => {
    for (const n of plan.nodes) {
      const ike = new X509Certificate(read(cluster, n.name, ipsecCertPath(n.name)));
      expect(readCertificate(ike).usages).toEqual(['ipsecIKE']);
      for (const [consumer, cas] of Object.entries(anchors))
        expect(verifiesAgainst(ike, cas), `${n.name}'s IKE certificate trusted by ${consumer}`).toBe(consumer === 'strongSwan');
    }
  });

  it('no Kubernetes or etcd certificate authenticates IKE', () => {
    for (const [node, files] of cluster.nodes) {
      for (const { where, cert } of heldCertificates(files).filter((h) => !h.where.startsWith(PATHS.ipsecCertDir))) {
        expect(verifiesAgainst(cert, anchors.strongSwan!), `${node}:${where}`).toBe(false);
      }
    }
  });

  it('the front-proxy CA vouches for the front-proxy client only', () => {
    for (const [node, files] of cluster.nodes) {
      for (const { where, cert } of heldCertificates(files))
        expect(verifiesAgainst(cert, anchors['API server (front proxy)']!), `${node}:${where}`).toBe(where === PATHS.frontProxyClientCert);
    }
  });

  it('four distinct CAs; strongSwan pins the IKE CA', () => {
    const cas = Object.values(pki.cas).map((c) => c!.cert);
    expect(new Set(cas).size).toBe(4);
    for (const n of plan.nodes) {
      expect(ipsecConns(read(cluster, n.name, PATHS.ipsecConf)).get('%default')!.rightca).toBe(`CN=${readCertificate(pki.cas['ike-ca']!.cert).commonName}`);
      expect(anchors.strongSwan).toEqual([pki.cas['ike-ca']!.cert]);
    }
  });
});

describe('CA keys', () => {
  it("only the cluster CA's key reaches a node, and only the master; the others stay in the state dir", async () => {
    const plan = makePlan();
    const store = memoryStore();
    const pki = (await ensurePki(plan, store, opts())).materials;
    const cluster = renderCluster(plan, pki, templates);
    const body = (pem: string) => pem.replace(/-----[A-Z ]+-----|\s/g, '');
    for (const ca of caSpecs(plan)) {
      const key = body(store.read(`${ca.id}.key`)!);
      for (const [node, files] of cluster.nodes) {
        const tree = files
          .map((f) => body(f.content) + body(f.content.replace(/[A-Za-z0-9+/=]{200,}/g, (b64) => Buffer.from(b64, 'base64').toString())))
          .join('');
        expect(tree.includes(key), `${ca.id}.key in ${node}'s tree`).toBe(ca.id === 'ca' && node === 'master');
      }
      expect(pki.cas[ca.id]!.key !== undefined, `${ca.id}'s key in the materials render receives`).toBe(ca.id === 'ca');
    }
  });
});

describe('node names that are identities', () => {
  it.each([...RESERVED_NODE_NAMES.keys()])('%s is refused at validation, naming the key', (name) => {
    const yaml = clusterYaml({
      nodes: [
        { name: 'master', role: 'master', ip: '192.168.10.10' },
        { name, ip: '192.168.10.21', podSubnet: '10.240.1.0/24' },
      ],
    });
    let error: unknown;
    try {
      parseCluster(yaml, 'cluster.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(new RegExp(`nodes\\[1\\]\\.name = "${name}": is reserved: it is .+\\n    fix: rename the node`));
  });

  it("the reserved list covers every identity the certificates and the add-ons' RBAC name", () => {
    const plan = makePlan();
    const nodeNames = new Set(plan.nodes.map((n) => n.name));
    const labels = (names: string[]) => names.filter((n) => /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n) && !nodeNames.has(n) && n !== plan.cluster.name);
    const named = certSpecs(plan).flatMap((s) => labels([s.commonName, ...s.organizations, ...s.dnsNames]));
    const subjects = addonManifests(plan).flatMap((m) =>
      m.objects.flatMap((o) => ('subjects' in o && o.subjects ? o.subjects.filter((s) => s.kind !== 'ServiceAccount').map((s) => s.name) : [])),
    );
    for (const name of [...named, ...labels(subjects)]) expect(RESERVED_NODE_NAMES.has(name), name).toBe(true);
  });
});

describe('migrating a state issued with one CA (test/fixtures/legacy-one-ca)', () => {
  let store: ReturnType<typeof legacyMemoryStore>;
  let before: Map<string, string>;
  let first: Awaited<ReturnType<typeof ensurePki>>;
  const plan = makePlan();

  beforeAll(async () => {
    store = legacyMemoryStore();
    before = new Map([...store.entries].map(([k, v]) => [k, v.content]));
    first = await ensurePki(plan, store, opts());
  });

  it('keeps the cluster CA and every credential that stays in its domain, so API clients keep working', () => {
    expect(first.materials.cas.ca!.cert).toBe(before.get('ca.crt'));
    const kept = [
      'apiserver',
      'controller-manager',
      'scheduler',
      ...plan.minions.flatMap((m) => [`kubelet-client@${m.name}`, `kubelet-serving@${m.name}`, `kube-proxy@${m.name}`]),
    ];
    for (const id of kept) expect(first.materials.certs[id]!.cert, id).toBe(before.get(`${id}.crt`));
    expect(first.report.reused).toEqual(expect.arrayContaining(['ca', 'sa', ...kept]));
  });

  it('issues the new CAs and moves every certificate into its own domain', () => {
    const issued = Object.fromEntries(first.report.issued.map((i) => [i.id, i.reason]));
    expect(issued).toMatchObject({
      'etcd-ca': 'missing',
      'front-proxy-ca': 'missing',
      'ike-ca': 'missing',
      'etcd-server': 'not signed by its CA (etcd-ca)',
      'etcd-peer': 'not signed by its CA (etcd-ca)',
      'apiserver-etcd-client': 'not signed by its CA (etcd-ca)',
      'etcd-healthcheck-client': 'missing',
      'front-proxy-client': 'missing',
      admin: 'subject changed (was CN=kubernetes-admin, O=system:masters)',
      'super-admin': 'missing',
      'apiserver-kubelet-client': 'subject changed (was CN=kube-apiserver-kubelet-client, O=system:masters)',
      'encryption-key': 'missing',
    });
    for (const n of plan.nodes) expect(issued[ipsecCertId(n.name)]).toBe('not signed by its CA (ike-ca)');
  });

  it("opens an IKE rotation: the old CA and each node's old IKE certificate stay beside the new ones", () => {
    expect(first.report.open).toEqual(['ike-ca']);
    const t = first.materials.ikeTransition!;
    expect(t.previousCa).toBe(before.get('ca.crt'));
    for (const n of plan.nodes)
      expect(t.certs[ipsecCertId(n.name)]).toEqual({ cert: before.get(`ipsec@${n.name}.crt`), key: before.get(`ipsec@${n.name}.key`) });
    const cluster = renderCluster(plan, first.materials, templates);
    for (const n of plan.nodes) {
      const d = ipsecConns(read(cluster, n.name, PATHS.ipsecConf)).get('%default')!;
      expect(d.leftcert).toBe(`${n.name}.pem,${n.name}-previous.pem`);
      expect(d.rightca).toBeUndefined();
      expect(read(cluster, n.name, PATHS.ipsecPreviousCaCert)).toBe(before.get('ca.crt'));
      expect(read(cluster, n.name, PATHS.ipsecSecrets)).toMatch(new RegExp(`^: ECDSA ${n.name}\\.key\\n: ECDSA ${n.name}-previous\\.key$`, 'm'));
    }
  });

  it('a second render changes nothing and keeps the rotation open', async () => {
    const again = await ensurePki(plan, store, opts());
    expect(again.report.issued).toEqual([]);
    expect(again.report.open).toEqual(['ike-ca']);
  });

  it('refuses to start another IKE rotation before this one is retired', async () => {
    await expect(ensurePki(plan, store, opts({ reissue: ['ike-ca'] }))).rejects.toThrow(PkiRequestError);
    await expect(ensurePki(plan, store, opts({ reissue: 'all' }))).rejects.toThrow(
      /--reissue all: would replace ike-ca again while its previous rotation is still in progress/,
    );
  });

  it("--retire ike-ca drops the old CA from every node's IKE trust", async () => {
    const s = legacyMemoryStore();
    await ensurePki(plan, s, opts());
    const done = await ensurePki(plan, s, opts({ retire: ['ike-ca'] }));
    expect(done.report).toMatchObject({ retired: ['ike-ca'], open: [], issued: [] });
    expect(done.materials.ikeTransition).toBeUndefined();
    expect(s.list().filter((n) => n.includes('.previous'))).toEqual([]);
    const cluster = renderCluster(plan, done.materials, templates);
    for (const n of plan.nodes) {
      expect(cluster.nodes.get(n.name)!.some((f) => f.path === PATHS.ipsecPreviousCaCert || f.path.includes('-previous'))).toBe(false);
      expect(ipsecConns(read(cluster, n.name, PATHS.ipsecConf)).get('%default')!.leftcert).toBe(`${n.name}.pem`);
    }
    await expect(ensurePki(plan, s, opts({ retire: ['ike-ca'] }))).rejects.toThrow(/--retire ike-ca: no rotation of it is in progress/);
  });
});

describe('re-issuing the IKE CA of a cluster with trust domains', () => {
  it('keeps the previous IKE CA and certificates until retired, like the migration', async () => {
    const plan = makePlan();
    const store = memoryStore();
    const first = await ensurePki(plan, store, opts());
    expect(first.report.open).toEqual([]);
    const rotated = await ensurePki(plan, store, opts({ reissue: ['ike-ca'] }));
    expect(rotated.report.open).toEqual(['ike-ca']);
    expect(rotated.materials.ikeTransition!.previousCa).toBe(first.materials.cas['ike-ca']!.cert);
    expect(rotated.materials.ikeTransition!.certs['ipsec@minion1']).toEqual(first.materials.certs['ipsec@minion1']);
    expect(rotated.materials.cas['ike-ca']!.cert).not.toBe(first.materials.cas['ike-ca']!.cert);
  });
});
