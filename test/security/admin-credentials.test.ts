// Issue 18: admin.conf and the API server's kubelet client were in system:masters, which the
// API server binds to cluster-admin irrevocably, for a year. Now, as kubeadm does it since
// v1.29: admin.conf is in kubeadm:cluster-admins, bound by an RBAC ClusterRoleBinding of that
// name; a break-glass system:masters credential (super-admin.conf) stays on the master,
// 0600, and is used only to create that binding on a fresh cluster; the kubelet client has
// no group and relies on its binding to system:kubelet-api-admin.
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CLUSTER_ADMINS_GROUP, IDENTITY, SUPER_ADMIN_GROUP } from '../../src/pki/specs.ts';
import { readCertificate } from '../../src/pki/x509.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { addonManifests } from '../../src/render/addons.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { fakeCluster, type FakeCluster } from '../helpers/fake-kubectl.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';
import { fileAt } from '../helpers/parse.ts';

const plan = makePlan();
const cluster = renderCluster(plan, await issuePki(plan), loadTemplates());
const master = cluster.nodes.get('master')!;
const user = (path: string, files = master) => {
  const kc = parseYaml(fileAt(files, path).content);
  return {
    server: kc.clusters[0].cluster.server as string,
    cert: readCertificate(Buffer.from(kc.users[0].user['client-certificate-data'], 'base64').toString()),
  };
};
const bindings = addonManifests(plan).flatMap((m) =>
  m.objects
    .filter((o) => o.kind === 'ClusterRoleBinding')
    .map((o) => ({ file: m.path, binding: o as { metadata: { name: string }; roleRef: { name: string }; subjects: { kind: string; name: string }[] } })),
);

describe('admin credentials', () => {
  it("admin.conf (and root's kubectl on the master) is in kubeadm:cluster-admins, not system:masters", () => {
    expect(user(PATHS.adminKubeconfig).cert).toMatchObject({ commonName: IDENTITY.admin, organizations: [CLUSTER_ADMINS_GROUP] });
    expect(fileAt(master, PATHS.rootKubeconfig).content).toBe(fileAt(master, PATHS.adminKubeconfig).content);
  });

  it("the add-ons bind kubeadm:cluster-admins to cluster-admin (kubeadm's binding), in the manifest applied first", () => {
    const b = bindings.find((x) => x.binding.metadata.name === CLUSTER_ADMINS_GROUP)!;
    expect(b.binding.roleRef.name).toBe('cluster-admin');
    expect(b.binding.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: CLUSTER_ADMINS_GROUP }]);
    expect(addonManifests(plan)[0]).toMatchObject({ path: b.file, bootstrap: true });
  });

  it('the break-glass super-admin.conf is on the master only, 0600, in system:masters, dialling loopback', () => {
    const f = fileAt(master, PATHS.superAdminKubeconfig);
    expect(f.mode).toBe(0o600);
    expect(user(PATHS.superAdminKubeconfig)).toMatchObject({
      server: plan.apiserver.localUrl,
      cert: { commonName: IDENTITY.superAdmin, organizations: [SUPER_ADMIN_GROUP] },
    });
    for (const m of plan.minions) expect(cluster.nodes.get(m.name)!.some((x) => x.path === PATHS.superAdminKubeconfig)).toBe(false);
  });

  it('no other credential anywhere is in system:masters', () => {
    for (const [node, files] of cluster.nodes) {
      for (const f of files) {
        const certs =
          f.path.endsWith('.conf') && f.content.includes('client-certificate-data')
            ? [Buffer.from(parseYaml(f.content).users[0].user['client-certificate-data'], 'base64').toString()]
            : f.content.startsWith('-----BEGIN CERTIFICATE-----')
              ? [f.content]
              : [];
        for (const pem of certs) {
          const masters = new X509Certificate(pem).subject.includes(`O=${SUPER_ADMIN_GROUP}`);
          expect(masters, `${node}:${f.path}`).toBe(node === 'master' && f.path === PATHS.superAdminKubeconfig);
        }
      }
    }
  });

  it("the API server's kubelet client has no group; its rights are its binding to system:kubelet-api-admin", () => {
    expect(readCertificate(fileAt(master, PATHS.apiserverKubeletClientCert).content)).toMatchObject({
      commonName: IDENTITY.apiserverKubeletClient,
      organizations: [],
    });
    const b = bindings.find((x) => x.binding.subjects.some((s) => s.name === IDENTITY.apiserverKubeletClient))!;
    expect(b.binding.roleRef.name).toBe('system:kubelet-api-admin');
    expect(b.binding.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: IDENTITY.apiserverKubeletClient }]);
  });
});

describe('the add-on unit on a fresh cluster (kubectl and the API server emulated)', () => {
  const script = fileAt(master, PATHS.addonsScript).content;
  let api: FakeCluster | undefined;
  afterEach(() => api?.cleanup());

  it('passes shellcheck', () => {
    const r = spawnSync('shellcheck', ['--severity=style', '-'], { input: script, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it("creates admin.conf's binding with super-admin.conf once, then applies everything as admin.conf", () => {
    api = fakeCluster({ secrets: [], encryptionConfig: 'v1' });
    const first = api.run(script);
    expect(first.status, first.stderr).toBe(0);
    expect(api.adminBound()).toBe(true);
    const bootstrap = addonManifests(plan)
      .filter((m) => m.bootstrap)
      .map((m) => m.path);
    const superCalls = api.calls().filter(([kc]) => kc!.endsWith('/super-admin.conf'));
    expect(superCalls.map(([, ...argv]) => argv)).toEqual([
      ['apply', '--server-side', '--field-manager=kube-ipsec', '--force-conflicts', ...bootstrap.flatMap((p) => ['-f', p])],
    ]);
    const applies = api.calls().filter(([kc, ...rest]) => kc!.endsWith('/admin.conf') && rest.includes('apply'));
    expect(applies).toHaveLength(1);
    expect(applies[0]!.filter((a) => a.startsWith('/etc/kubernetes/addons/'))).toEqual(addonManifests(plan).map((m) => m.path));

    const callsBefore = api.calls().length;
    const second = api.run(script);
    expect(second.status, second.stderr).toBe(0);
    expect(
      api
        .calls()
        .slice(callsBefore)
        .filter(([kc]) => kc!.endsWith('/super-admin.conf')),
    ).toEqual([]);
  });
});
