import { createPrivateKey } from 'node:crypto';
import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { credentialIds, ensurePki, type PkiOptions } from '../../src/pki/issue.ts';
import { CLUSTER_ADMINS_GROUP, certSpecs, pskId, type CaId } from '../../src/pki/specs.ts';
import { memoryStore } from '../../src/pki/store.ts';
import { isSignedBy, readCertificate } from '../../src/pki/x509.ts';
import { FIXED_NOW, plan } from '../helpers/cluster.ts';

const opts = (extra: Partial<PkiOptions> = {}): PkiOptions => ({ now: FIXED_NOW, random: (n) => webcrypto.getRandomValues(new Uint8Array(n)), ...extra });
const days = (n: number) => new Date(FIXED_NOW.getTime() + n * 86_400_000);

describe('certificate set', () => {
  it("issues kubeadm's identities, each signed by the CA of its trust domain and by no other", async () => {
    const p = plan();
    const { materials } = await ensurePki(p, memoryStore(), opts());
    const facts = (id: string) => readCertificate(materials.certs[id]!.cert);
    for (const [id, name] of [
      ['ca', 'kube-ipsec-ca'],
      ['etcd-ca', 'kube-ipsec-etcd-ca'],
      ['front-proxy-ca', 'kube-ipsec-front-proxy-ca'],
      ['ike-ca', 'kube-ipsec-ike-ca'],
    ] as const) {
      expect(readCertificate(materials.cas[id]!.cert)).toMatchObject({ isCa: true, commonName: name });
    }
    expect(facts('apiserver')).toMatchObject({
      commonName: 'kube-apiserver',
      usages: ['serverAuth'],
      ipAddresses: ['10.30.0.1', '192.168.10.10', '127.0.0.1'],
    });
    expect(facts('apiserver').dnsNames).toEqual(
      expect.arrayContaining(['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'master']),
    );
    expect(facts('etcd-server')).toMatchObject({ usages: ['serverAuth', 'clientAuth'], ipAddresses: ['192.168.10.10', '127.0.0.1'] });
    expect(facts('etcd-peer').usages).toEqual(['serverAuth', 'clientAuth']);
    expect(facts('apiserver-etcd-client')).toMatchObject({ commonName: 'kube-apiserver-etcd-client', organizations: [], usages: ['clientAuth'] });
    expect(facts('etcd-healthcheck-client')).toMatchObject({ commonName: 'kube-etcd-healthcheck-client', organizations: [], usages: ['clientAuth'] });
    expect(facts('front-proxy-client')).toMatchObject({ commonName: 'front-proxy-client', organizations: [], usages: ['clientAuth'] });
    expect(facts('apiserver-kubelet-client')).toMatchObject({ commonName: 'kube-apiserver-kubelet-client', organizations: [], usages: ['clientAuth'] });
    expect(facts('admin')).toMatchObject({ commonName: 'kubernetes-admin', organizations: [CLUSTER_ADMINS_GROUP], usages: ['clientAuth'] });
    expect(facts('super-admin')).toMatchObject({ commonName: 'kubernetes-super-admin', organizations: ['system:masters'], usages: ['clientAuth'] });
    expect(facts('controller-manager').commonName).toBe('system:kube-controller-manager');
    expect(facts('scheduler').commonName).toBe('system:kube-scheduler');
    for (const m of ['minion1', 'minion2', 'minion3']) {
      expect(facts(`kubelet-client@${m}`)).toMatchObject({ commonName: `system:node:${m}`, organizations: ['system:nodes'], usages: ['clientAuth'] });
      expect(facts(`kubelet-serving@${m}`)).toMatchObject({ usages: ['serverAuth'], ipAddresses: [p.nodes.find((n) => n.name === m)!.ip], dnsNames: [m] });
      expect(facts(`kube-proxy@${m}`).commonName).toBe('system:kube-proxy');
    }
    for (const n of p.nodes)
      expect(facts(`ipsec@${n.name}`)).toMatchObject({ commonName: n.name, dnsNames: [n.name], ipAddresses: [n.ip], usages: ['ipsecIKE'] });
    for (const s of certSpecs(p)) {
      for (const ca of Object.keys(materials.cas) as CaId[])
        expect(isSignedBy(materials.certs[s.id]!.cert, materials.cas[ca]!.cert), `${s.id} signed by ${ca}`).toBe(ca === s.ca);
      const key = createPrivateKey(materials.certs[s.id]!.key);
      expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve]).toEqual(['ec', 'prime256v1']);
    }
    expect(materials.psks).toEqual({});
  });

  it('with auth: psk, one random key per node pair and no IKE certificates', async () => {
    const p = plan({ 'ipsec.auth': 'psk' });
    const { materials } = await ensurePki(p, memoryStore(), opts());
    expect(Object.keys(materials.psks)).toHaveLength(6);
    expect(new Set(Object.values(materials.psks)).size).toBe(6);
    expect(Buffer.from(materials.psks[pskId('minion2', 'minion1')]!, 'base64')).toHaveLength(32);
    expect(Object.keys(materials.certs).some((id) => id.startsWith('ipsec@'))).toBe(false);
  });

  it('rsa-2048 is available where a consumer needs RSA', async () => {
    const p = plan({ 'pki.keyAlgorithm': 'rsa-2048', nodes: [{ name: 'master', role: 'master', ip: '192.168.10.10' }] });
    const { materials } = await ensurePki(p, memoryStore(), opts());
    expect(createPrivateKey(materials.certs.apiserver!.key).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(isSignedBy(materials.certs.apiserver!.cert, materials.cas.ca!.cert)).toBe(true);
    expect(createPrivateKey(materials.certs['ipsec@master']!.key).asymmetricKeyDetails?.modulusLength).toBe(2048);
  });
});

describe('reuse and re-issue', () => {
  it('a second run reuses everything, byte for byte', async () => {
    const p = plan({ 'ipsec.auth': 'psk' });
    const store = memoryStore();
    const first = await ensurePki(p, store, opts());
    const second = await ensurePki(p, store, opts());
    expect(second.report.issued).toEqual([]);
    expect(second.report.reused.sort()).toEqual(credentialIds(p).sort());
    expect(second.materials).toEqual(first.materials);
  });

  it('only what the change touches is re-issued (master IP → its serving certs)', async () => {
    const store = memoryStore();
    await ensurePki(plan(), store, opts());
    const moved = plan({ 'nodes.0.ip': '192.168.10.11' });
    const { report } = await ensurePki(moved, store, opts());
    expect(report.issued.map((i) => i.id).sort()).toEqual(['apiserver', 'etcd-peer', 'etcd-server', 'ipsec@master']);
    expect(report.issued.find((i) => i.id === 'apiserver')!.reason).toBe('subject alternative names changed');
  });

  it('a new minion gets its credentials; existing ones are untouched', async () => {
    const store = memoryStore();
    await ensurePki(plan(), store, opts());
    const nodes = [...plan().nodes.map(({ name, role, ip }) => ({ name, role, ip })), { name: 'minion4', ip: '192.168.10.24' }];
    const { report } = await ensurePki(plan({ nodes }), store, opts());
    expect(report.issued.map((i) => i.id).sort()).toEqual(['ipsec@minion4', 'kube-proxy@minion4', 'kubelet-client@minion4', 'kubelet-serving@minion4']);
  });

  it('renews certificates within renewBeforeDays of expiry', async () => {
    const store = memoryStore();
    await ensurePki(plan(), store, opts());
    expect((await ensurePki(plan(), store, opts({ now: days(300) }))).report.issued).toEqual([]);
    const late = await ensurePki(plan(), store, opts({ now: days(340) }));
    expect(late.report.issued).toHaveLength(certSpecs(plan()).length);
    expect(late.report.issued[0]!.reason).toMatch(/within pki.renewBeforeDays/);
  });

  it('re-issues on request: one credential, or a CA and every certificate it signed', async () => {
    const store = memoryStore();
    const first = await ensurePki(plan(), store, opts());
    const one = await ensurePki(plan(), store, opts({ reissue: ['ipsec@minion2'] }));
    expect(one.report.issued).toEqual([{ id: 'ipsec@minion2', reason: 're-issue requested' }]);
    expect(one.materials.certs['ipsec@minion2']!.key).not.toBe(first.materials.certs['ipsec@minion2']!.key);
    for (const caId of ['ca', 'etcd-ca', 'front-proxy-ca'] as const) {
      const ca = await ensurePki(plan(), store, opts({ reissue: [caId] }));
      expect(ca.report.issued.map((i) => i.id)).toEqual([
        caId,
        ...certSpecs(plan())
          .filter((s) => s.ca === caId)
          .map((s) => s.id),
      ]);
      expect(ca.report.issued[1]!.reason).toBe(`not signed by its CA (${caId})`);
    }
  });

  it('switching the key algorithm re-issues every key', async () => {
    const store = memoryStore();
    await ensurePki(plan({ nodes: [{ name: 'master', role: 'master', ip: '192.168.10.10' }] }), store, opts());
    const { report } = await ensurePki(
      plan({ nodes: [{ name: 'master', role: 'master', ip: '192.168.10.10' }], 'pki.keyAlgorithm': 'rsa-2048' }),
      store,
      opts(),
    );
    // Every key pair; the Secrets encryption key is no key pair.
    expect(report.reused).toEqual(['encryption-key']);
    expect(report.issued[0]!.reason).toMatch(/key is ecdsa-p256, pki.keyAlgorithm is rsa-2048/);
  });

  it('keys and PSKs are stored as secrets', async () => {
    const store = memoryStore();
    await ensurePki(plan({ 'ipsec.auth': 'psk' }), store, opts());
    for (const [name, entry] of store.entries) {
      expect(entry.secret, name).toBe(name.endsWith('.key') || name.startsWith('ipsec-psk@') || name === 'encryption-key');
    }
  });

  it('a key swapped for another is caught, even though the pair was proven before', async () => {
    const store = memoryStore();
    const { materials } = await ensurePki(plan(), store, opts());
    store.write('scheduler.key', materials.certs['controller-manager']!.key, true);
    const { report } = await ensurePki(plan(), store, opts());
    expect(report.issued).toEqual([{ id: 'scheduler', reason: 'key does not match certificate' }]);
  });

  it('a damaged certificate in the state is replaced, not trusted', async () => {
    const store = memoryStore();
    await ensurePki(plan(), store, opts());
    store.write('scheduler.crt', 'garbage', false);
    const { report } = await ensurePki(plan(), store, opts());
    expect(report.issued).toEqual([{ id: 'scheduler', reason: 'certificate unreadable' }]);
  });
});
