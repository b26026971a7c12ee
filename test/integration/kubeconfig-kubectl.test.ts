// Every rendered kubeconfig, read by a real kubectl (Debian's kubernetes-client, unpacked by
// scripts/test-deps): `kubectl config view` must parse it to what the plan says, and kubectl
// must complete a mutual-TLS request with it against a server holding the rendered API server
// certificate (CA trusted, client certificate and key paired, identity as expected). Only the
// server address is overridden (127.0.0.1 is in the API server's SANs).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/plan/paths.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import type { PkiMaterials } from '../../src/pki/issue.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';

const KUBECTL = '/var/cache/kube-ipsec/tools/kubernetes-client/usr/bin/kubectl';
const run = promisify(execFile);
const plan = makePlan();
const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-kubectl-'));
let pki: PkiMaterials;
let server: Server;
let port: number;

beforeAll(async () => {
  if (!existsSync(KUBECTL)) throw new Error(`${KUBECTL} is missing: run ./scripts/test-deps (it unpacks Debian's kubernetes-client there)`);
  pki = await issuePki(plan);
  // The API server's certificate and the cluster CA: a client certificate must chain to it.
  server = createServer(
    { cert: pki.certs.apiserver!.cert, key: pki.certs.apiserver!.key, ca: pki.cas.ca!.cert, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, cn: peer.subject?.CN, o: peer.subject?.O ?? null }));
    },
  );
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
  rmSync(dir, { recursive: true, force: true });
});

/** [node, path, expected user, expected server] of every kubeconfig of the default cluster. */
const KUBECONFIGS: [string, string, string, string][] = [
  ['master', PATHS.adminKubeconfig, 'kubernetes-admin', plan.apiserver.url],
  ['master', PATHS.rootKubeconfig, 'kubernetes-admin', plan.apiserver.url],
  ['master', PATHS.superAdminKubeconfig, 'kubernetes-super-admin', plan.apiserver.localUrl],
  ['master', PATHS.controllerManagerKubeconfig, 'system:kube-controller-manager', plan.apiserver.localUrl],
  ['master', PATHS.schedulerKubeconfig, 'system:kube-scheduler', plan.apiserver.localUrl],
  ...plan.minions.flatMap((m): [string, string, string, string][] => [
    [m.name, PATHS.kubeletKubeconfig, `system:node:${m.name}`, plan.apiserver.url],
    [m.name, PATHS.kubeProxyKubeconfig, 'system:kube-proxy', plan.apiserver.url],
  ]),
];

describe('kubeconfigs, read by a real kubectl', () => {
  it('every kubeconfig of every node is listed here', () => {
    const cluster = renderCluster(plan, pki, loadTemplates());
    const found = [...cluster.nodes].flatMap(([node, files]) =>
      files.filter((f) => /^apiVersion: v1\nkind: Config\n/m.test(f.content)).map((f) => `${node}:${f.path}`),
    );
    expect(found.sort()).toEqual(KUBECONFIGS.map(([n, p]) => `${n}:${p}`).sort());
  });

  it.each(KUBECONFIGS)('%s %s: parsed as written, and kubectl authenticates with it over mutual TLS', async (node, path, user, server) => {
    const cluster = renderCluster(plan, pki, loadTemplates());
    const f = cluster.nodes.get(node)!.find((x) => x.path === path)!;
    expect(f.mode).toBe(0o600);
    const file = join(dir, `${node}-${path.replace(/\W+/g, '_')}`);
    writeFileSync(file, f.content, { mode: 0o600 });
    const view = JSON.parse((await run(KUBECTL, ['config', 'view', '--kubeconfig', file, '--raw', '-o', 'json'])).stdout);
    expect(view['current-context']).toBe(`${user}@${plan.cluster.name}`);
    expect(view.clusters).toEqual([
      { name: plan.cluster.name, cluster: { server, 'certificate-authority-data': Buffer.from(pki.cas.ca!.cert).toString('base64') } },
    ]);
    expect(view.users.map((u: { name: string }) => u.name)).toEqual([user]);
    const got = JSON.parse(
      (await run(KUBECTL, ['--kubeconfig', file, '--server', `https://127.0.0.1:${port}`, '--request-timeout', '10s', 'get', '--raw', '/whoami'])).stdout,
    );
    expect(got.cn).toBe(user);
  });

  it('kubectl refuses a malformed kubeconfig (the check can fail)', async () => {
    const file = join(dir, 'bad.conf');
    writeFileSync(file, 'apiVersion: v1\nkind: Config\nclusters: [{name: a, cluster: {server: 5}}]\n');
    await expect(run(KUBECTL, ['config', 'view', '--kubeconfig', file])).rejects.toThrow(/error loading config file/);
  });
});
