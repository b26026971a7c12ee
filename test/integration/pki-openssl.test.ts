// Every certificate in every rendered tree, checked by OpenSSL itself: chains to the CA of its
// trust domain (and to no other), carries the right purposes, names and SANs, and matches its key.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runRender, type RenderResult } from '../../src/render/pipeline.ts';
import { caSpecs, certSpecs } from '../../src/pki/specs.ts';
import { ipsecCertPath, PATHS } from '../../src/plan/paths.ts';
import { clusterYaml } from '../helpers/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-openssl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let result: RenderResult;
const out = join(dir, 'out');

const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });
const ca = () => join(out, 'master', PATHS.caCert);
/** A CA's certificate as the state dir keeps it (the trees hold only what each node needs). */
const stateCa = (id: string) => join(dir, 'state', `${id}.crt`);

beforeAll(async () => {
  writeFileSync(join(dir, 'cluster.yaml'), clusterYaml());
  result = await runRender({ configFile: join(dir, 'cluster.yaml'), outDir: out, stateDir: join(dir, 'state') });
});

function isCaFile(file: string): boolean {
  return /CA:TRUE/.test(openssl('x509', '-in', file, '-noout', '-ext', 'basicConstraints'));
}

/** Every certificate file of every node, and those embedded in kubeconfigs (written out). */
function certificateFiles(): { node: string; path: string; file: string }[] {
  const found: { node: string; path: string; file: string }[] = [];
  for (const [node, files] of result.cluster.nodes) {
    for (const f of files) {
      if (f.content.startsWith('-----BEGIN CERTIFICATE-----')) found.push({ node, path: f.path, file: join(out, node, f.path) });
      if (f.path.endsWith('.conf') && f.content.includes('client-certificate-data')) {
        const user = parseYaml(f.content).users[0].user;
        const file = join(dir, `${node}-${f.path.replaceAll('/', '_')}.crt`);
        writeFileSync(file, Buffer.from(user['client-certificate-data'], 'base64'));
        found.push({ node, path: `${f.path} (embedded)`, file });
      }
    }
  }
  return found;
}

describe('openssl', () => {
  it('verifies every certificate in every tree against its own CA, and against no other', () => {
    const certs = certificateFiles().filter((c) => !isCaFile(c.file));
    expect(certs.length).toBeGreaterThanOrEqual(certSpecs(result.plan).length);
    const cas = caSpecs(result.plan).map((c) => c.id);
    for (const c of certs) {
      const own = cas.filter((id) => spawnSync('openssl', ['verify', '-CAfile', stateCa(id), c.file], { encoding: 'utf8' }).status === 0);
      expect(own, `${c.node}:${c.path} verifies against`).toHaveLength(1);
    }
  });

  it('an IKE certificate is no TLS client or server certificate, even for the CA that issued it', () => {
    for (const n of result.plan.nodes) {
      const ike = join(out, n.name, ipsecCertPath(n.name));
      expect(openssl('verify', '-CAfile', stateCa('ike-ca'), ike).trim()).toBe(`${ike}: OK`);
      for (const purpose of ['sslclient', 'sslserver']) {
        const r = spawnSync('openssl', ['verify', '-CAfile', stateCa('ike-ca'), '-purpose', purpose, ike], { encoding: 'utf8' });
        expect(r.status, `${n.name} ${purpose}`).not.toBe(0);
        expect(r.stdout + r.stderr).toMatch(/unsuitable certificate purpose|unsupported certificate purpose/);
      }
      // and the CAs of the API server and etcd do not know it at all
      for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca'])
        expect(spawnSync('openssl', ['verify', '-CAfile', stateCa(ca), '-purpose', 'sslclient', ike]).status).not.toBe(0);
    }
    // The reverse: a minion's kubelet client certificate is a TLS client for the cluster CA only.
    const kubelet = join(dir, 'kubelet-client.crt');
    writeFileSync(kubelet, readFileSync(join(dir, 'state', 'kubelet-client@minion1.crt')));
    expect(openssl('verify', '-CAfile', stateCa('ca'), '-purpose', 'sslclient', kubelet).trim()).toBe(`${kubelet}: OK`);
    for (const ca of ['ike-ca', 'etcd-ca']) expect(spawnSync('openssl', ['verify', '-CAfile', stateCa(ca), kubelet]).status).not.toBe(0);
  });

  it('refuses them against a CA it does not know', () => {
    const foreignKey = join(dir, 'foreign.key');
    const foreign = join(dir, 'foreign.crt');
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      foreignKey,
      '-out',
      foreign,
      '-subj',
      '/CN=someone-else',
      '-days',
      '1',
    );
    const r = spawnSync('openssl', ['verify', '-CAfile', foreign, join(out, 'master', PATHS.apiserverCert)], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unable to get local issuer certificate/);
  });

  it('each certificate has the subject, SANs and purposes of its role', () => {
    const state = join(dir, 'state');
    for (const spec of certSpecs(result.plan)) {
      const file = join(state, `${spec.id}.crt`);
      const subject = openssl('x509', '-in', file, '-noout', '-subject', '-nameopt', 'sep_multiline').trim();
      expect(subject).toContain(`CN=${spec.commonName}`);
      for (const o of spec.organizations) expect(subject).toContain(`O=${o}`);
      const purpose = openssl('x509', '-in', file, '-noout', '-purpose');
      expect(purpose).toContain(`SSL server : ${spec.usages.includes('serverAuth') ? 'Yes' : 'No'}`);
      expect(purpose).toContain(`SSL client : ${spec.usages.includes('clientAuth') ? 'Yes' : 'No'}`);
      const text = openssl('x509', '-in', file, '-noout', '-ext', 'subjectAltName');
      for (const dns of spec.dnsNames) expect(text).toContain(`DNS:${dns}`);
      for (const ip of spec.ipAddresses) expect(text).toContain(`IP Address:${ip}`);
      // the private key in the state belongs to this certificate
      const certPub = openssl('x509', '-in', file, '-noout', '-pubkey');
      const keyPub = openssl('pkey', '-in', join(state, `${spec.id}.key`), '-pubout');
      expect(keyPub).toBe(certPub);
    }
  });

  it('the CA is a CA and may sign certificates; leaves may not', () => {
    expect(openssl('x509', '-in', ca(), '-noout', '-ext', 'basicConstraints,keyUsage')).toMatch(/CA:TRUE[\s\S]*Certificate Sign/);
    expect(openssl('x509', '-in', join(out, 'master', PATHS.apiserverCert), '-noout', '-ext', 'basicConstraints')).toContain('CA:FALSE');
  });

  it('the service-account key pair is a pair', () => {
    const key = join(out, 'master', PATHS.serviceAccountKey);
    expect(openssl('pkey', '-in', key, '-pubout')).toBe(readFileSync(join(out, 'master', PATHS.serviceAccountPub), 'utf8'));
  });
});
