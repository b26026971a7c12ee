// Issue 18: Secrets were stored unencrypted in etcd, and the API server kept no audit log.
// Now the API server encrypts Secrets (secretbox, a 32-byte key from the state dir, rendered
// into a 0600 file on the master only), records the metadata of every request (never a
// body) in a rotated log, and the key rotates in two steps. The files are loaded by the API
// server's own loaders at the pinned release (test/tools/k8s-config-check). On the live
// cluster, `etcdctl get /registry/secrets/…` shows k8s:enc:secretbox:v1: (the lead's check).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ensurePki, PkiRequestError, type PkiMaterials } from '../../src/pki/issue.ts';
import { memoryStore } from '../../src/pki/store.ts';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { renderCluster, type RenderedCluster } from '../../src/render/index.ts';
import { SECRET } from '../../src/render/files.ts';
import { affectedUnits, parseRestartMap } from '../../src/render/restarts.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { FIXED_NOW, placeholderPki, plan as makePlan } from '../helpers/cluster.ts';
import { fakeCluster, type FakeCluster } from '../helpers/fake-kubectl.ts';
import { checkApiserverFiles } from '../helpers/k8s-config-check.ts';
import { fileAt, flagValue } from '../helpers/parse.ts';

const plan = makePlan();
const templates = loadTemplates();
const opts = (extra = {}) => ({ now: FIXED_NOW, random: (n: number) => crypto.getRandomValues(new Uint8Array(n)), ...extra });
const apiserverUnit = (c: RenderedCluster) => fileAt(c.nodes.get('master')!, `${PATHS.systemdDir}/${UNITS.apiserver}`).content;
const encryptionConfigOf = (c: RenderedCluster) => fileAt(c.nodes.get('master')!, flagValue(apiserverUnit(c), 'encryption-provider-config'));
const secretboxKeys = (c: RenderedCluster) =>
  parseYaml(encryptionConfigOf(c).content).resources[0].providers[0].secretbox.keys as { name: string; secret: string }[];

const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-at-rest-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes both files where the checker can read them, and runs the API server's loaders on them. */
function loadAsApiserver(c: RenderedCluster, tag: string) {
  const enc = join(scratch, `${tag}-encryption.yaml`);
  const audit = join(scratch, `${tag}-audit.yaml`);
  writeFileSync(enc, encryptionConfigOf(c).content, { mode: 0o600 });
  writeFileSync(audit, fileAt(c.nodes.get('master')!, flagValue(apiserverUnit(c), 'audit-policy-file')).content);
  return checkApiserverFiles(enc, audit);
}

describe('Secrets encrypted at rest', () => {
  let pki: PkiMaterials;
  let cluster: RenderedCluster;
  beforeAll(async () => {
    pki = (await ensurePki(plan, memoryStore(), opts())).materials;
    cluster = renderCluster(plan, pki, templates);
  });

  it('the API server encrypts Secrets with secretbox under a 32-byte key, identity only to read what is older', () => {
    const config = parseYaml(encryptionConfigOf(cluster).content);
    expect(config).toMatchObject({ apiVersion: 'apiserver.config.k8s.io/v1', kind: 'EncryptionConfiguration' });
    expect(config.resources).toHaveLength(1);
    expect(config.resources[0].resources).toEqual(['secrets']);
    expect(config.resources[0].providers.map((p: object) => Object.keys(p)[0])).toEqual(['secretbox', 'identity']);
    const [key] = secretboxKeys(cluster);
    expect(Buffer.from(key!.secret, 'base64')).toHaveLength(32);
    expect(key).toEqual(pki.encryptionKeys[0]);
  });

  it('the key is on the master only, in a 0600 file, and in no other file of any node', () => {
    const secret = pki.encryptionKeys[0]!.secret;
    expect(encryptionConfigOf(cluster).mode).toBe(SECRET);
    for (const [node, files] of cluster.nodes) {
      for (const f of files) expect(f.content.includes(secret), `${node}:${f.path}`).toBe(node === 'master' && f.path === PATHS.encryptionConfig);
    }
  });

  it("the API server's own loaders (k8s.io/apiserver at the pinned release) accept the files", { timeout: 900_000 }, () => {
    const r = loadAsApiserver(cluster, 'one-key');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('encrypted: secrets');
    expect(r.stdout + r.stderr).not.toContain(pki.encryptionKeys[0]!.secret);
  });

  it('the loaders refuse a key of the wrong length (the check can fail)', { timeout: 900_000 }, () => {
    const broken = renderCluster(plan, { ...pki, encryptionKeys: [{ name: 'short', secret: Buffer.from('sixteen byte key').toString('base64') }] }, templates);
    const r = loadAsApiserver(broken, 'short-key');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/secret is not of the expected length, got 16, expected one of \[32\]/);
  });
});

describe('audit log', () => {
  const cluster = renderCluster(plan, placeholderPki(plan), templates);

  it('the API server writes one, rotated at 100 MB, 10 files or 30 days', () => {
    const unit = apiserverUnit(cluster);
    expect(flagValue(unit, 'audit-log-path')).toBe(PATHS.auditLog);
    expect([flagValue(unit, 'audit-log-maxsize'), flagValue(unit, 'audit-log-maxbackup'), flagValue(unit, 'audit-log-maxage')]).toEqual(['100', '10', '30']);
    expect(cluster.nodes.get('master')!.some((f) => f.path === flagValue(unit, 'audit-policy-file'))).toBe(true);
  });

  it('the policy records metadata only: no rule records a request or response body', () => {
    const policy = parseYaml(fileAt(cluster.nodes.get('master')!, PATHS.auditPolicy).content);
    expect(policy).toMatchObject({ apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'] });
    for (const rule of policy.rules) expect(['None', 'Metadata']).toContain(rule.level);
    // Secrets, ConfigMaps and tokens are named at Metadata before any rule could catch them otherwise.
    const sensitive = policy.rules.findIndex((r: { resources?: { resources: string[] }[] }) => r.resources?.some((g) => g.resources.includes('secrets')));
    expect(policy.rules[sensitive]).toMatchObject({ level: 'Metadata' });
    expect(policy.rules[sensitive].resources.flatMap((g: { resources: string[] }) => g.resources)).toEqual(
      expect.arrayContaining(['secrets', 'configmaps', 'serviceaccounts/token', 'tokenreviews']),
    );
    expect(policy.rules.at(-1)).toEqual({ level: 'Metadata' });
  });
});

describe('rotating the encryption key', () => {
  it('a new key encrypts, the previous one still decrypts, until --retire encryption-key', async () => {
    const store = memoryStore();
    const first = await ensurePki(plan, store, opts());
    const rotated = await ensurePki(plan, store, opts({ reissue: ['encryption-key'] }));
    expect(rotated.report.open).toEqual(['encryption-key']);
    expect(rotated.materials.encryptionKeys).toHaveLength(2);
    expect(rotated.materials.encryptionKeys[1]).toEqual(first.materials.encryptionKeys[0]);
    expect(rotated.materials.encryptionKeys[0]!.name).not.toBe(first.materials.encryptionKeys[0]!.name);
    const during = renderCluster(plan, rotated.materials, templates);
    expect(secretboxKeys(during)).toEqual(rotated.materials.encryptionKeys);
    const r = loadAsApiserver(during, 'two-keys');
    expect(r.status, r.stderr).toBe(0);

    await expect(ensurePki(plan, store, opts({ reissue: ['encryption-key'] }))).rejects.toThrow(PkiRequestError);
    const done = await ensurePki(plan, store, opts({ retire: ['encryption-key'] }));
    expect(done.report).toMatchObject({ retired: ['encryption-key'], open: [] });
    expect(secretboxKeys(renderCluster(plan, done.materials, templates))).toEqual([rotated.materials.encryptionKeys[0]]);
  }, 900_000);

  it('a damaged key stops the render instead of being replaced (Secrets encrypted with it would be lost)', async () => {
    const store = memoryStore();
    await ensurePki(plan, store, opts());
    store.write('encryption-key', 'garbage\n', true);
    await expect(ensurePki(plan, store, opts())).rejects.toThrow(/encryption-key is damaged .* restore the file from a backup/);
    expect(store.read('encryption-key')).toBe('garbage\n');
  });
});

describe('the add-on unit rewrites every Secret once per encryption configuration', () => {
  const script = fileAt(renderCluster(plan, placeholderPki(plan), templates).nodes.get('master')!, PATHS.addonsScript).content;
  let api: FakeCluster | undefined;
  afterEach(() => api?.cleanup());

  it('after the first start and after every key change, not otherwise', () => {
    api = fakeCluster({ secrets: ['db-password', 'tls'], encryptionConfig: 'keys: [k1]' });
    expect(api.run(script).status).toBe(0);
    expect(api.replaced()).toEqual(['db-password', 'tls']);
    expect(api.run(script).status).toBe(0);
    expect(api.replaced()).toHaveLength(2);
    writeFileSync(join(api.dir, 'encryption-config.yaml'), 'keys: [k2, k1]');
    const r = api.run(script);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('rewrote 2 Secrets');
    expect(api.replaced()).toEqual(['db-password', 'tls', 'db-password', 'tls']);
  });

  it('a new key on the master restarts the API server first, then the add-on unit that rewrites', () => {
    const rules = parseRestartMap(fileAt(renderCluster(plan, placeholderPki(plan), templates).nodes.get('master')!, PATHS.restartMap).content);
    expect(affectedUnits(rules, new Set([PATHS.encryptionConfig]))).toEqual([
      { unit: UNITS.apiserver, action: 'restart' },
      { unit: UNITS.addons, action: 'restart' },
    ]);
  });

  it('with no Secret at all, there is nothing to replace (kubectl replace refuses an empty list)', () => {
    api = fakeCluster({ secrets: [], encryptionConfig: 'keys: [k1]' });
    const r = api.run(script);
    expect(r.status, r.stderr).toBe(0);
    expect(api.calls().some((c) => c.includes('replace'))).toBe(false);
  });
});
