// Where secrets go: a node's private keys only to that node, the CA key only to the master,
// every key and secret file 0600 — checked on real issued material.
import { beforeAll, describe, expect, it } from 'vitest';
import type { PkiMaterials } from '../../src/pki/issue.ts';
import { certSpecs, pskId } from '../../src/pki/specs.ts';
import type { Plan } from '../../src/plan/plan.ts';
import { renderCluster, type RenderedCluster } from '../../src/render/index.ts';
import { SECRET } from '../../src/render/files.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { issuePki, plan as makePlan } from '../helpers/cluster.ts';

const keyBody = (pem: string) =>
  pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');

describe.each([
  ['pubkey', {}],
  ['psk', { 'ipsec.auth': 'psk' }],
])('secrets with IPsec auth %s', (_, edits) => {
  let plan: Plan;
  let pki: PkiMaterials;
  let cluster: RenderedCluster;
  // A node's whole tree as one string, with kubeconfigs' base64 payloads decoded.
  const treeText = (node: string) =>
    cluster.nodes
      .get(node)!
      .map((f) => f.content + f.content.replace(/[A-Za-z0-9+/=]{200,}/g, (b64) => Buffer.from(b64, 'base64').toString()))
      .join('\n')
      .replace(/\s+/g, ''); // PEM line breaks fall anywhere; compare bare base64

  beforeAll(async () => {
    plan = makePlan(edits);
    pki = await issuePki(plan);
    cluster = renderCluster(plan, pki, loadTemplates());
  });

  it("no node tree contains another node's private key", () => {
    for (const spec of certSpecs(plan)) {
      const body = keyBody(pki.certs[spec.id]!.key);
      for (const n of plan.nodes) expect(treeText(n.name).includes(body), `${spec.id} key in ${n.name}`).toBe(n.name === spec.owner);
    }
  });

  it('only the master holds the CA and service-account keys', () => {
    for (const body of [keyBody(pki.cas.ca!.key!), keyBody(pki.serviceAccount.key)]) {
      for (const n of plan.nodes) expect(treeText(n.name).includes(body)).toBe(n.role === 'master');
    }
  });

  it('a pre-shared key is held by exactly the two nodes of its tunnel', () => {
    for (const t of plan.tunnels) {
      const secret = pki.psks[pskId(t.a, t.b)];
      if (!secret) continue;
      for (const n of plan.nodes) expect(treeText(n.name).includes(secret)).toBe(n.name === t.a || n.name === t.b);
    }
  });

  it('every file holding a key or secret is 0600, and nothing else is', () => {
    for (const [node, files] of cluster.nodes) {
      for (const f of files) {
        const sensitive =
          /PRIVATE KEY|client-key-data|: PSK |^kind: EncryptionConfiguration$/m.test(f.content) || f.path.endsWith('.key') || f.path.endsWith('ipsec.secrets');
        expect(f.mode === SECRET, `${node}:${f.path} mode ${f.mode.toString(8)}`).toBe(sensitive);
      }
    }
  });
});
