// Makes sure the state holds a valid CA, every certificate the plan needs, the
// service-account key pair and the IPsec pre-shared keys — reusing whatever is still
// right and issuing only what is missing, expiring, or no longer matches the plan.
import { createHash, X509Certificate } from 'node:crypto';
import type { Plan } from '../plan/plan.ts';
import { caCommonName, CA_ID, certSpecs, pskIds, type CertSpec } from './specs.ts';
import type { PkiStore } from './store.ts';
import { inspectPrivateKey, isSignedBy, readCertificate, type KeyAlgorithm, type PrivateKeyFacts } from './x509.ts';

/** The issuing side (and its libraries) is loaded only when something must be issued. */
const loadIssuer = () => import('./issuer.ts');

export interface Credential {
  cert: string;
  key: string;
}

export interface PkiMaterials {
  ca: Credential;
  /** By CertSpec id. */
  certs: Record<string, Credential>;
  serviceAccount: { key: string; pub: string };
  /** By pskId. */
  psks: Record<string, string>;
}

export interface PkiReport {
  issued: { id: string; reason: string }[];
  reused: string[];
}

export interface PkiOptions {
  now: Date;
  /** Source of randomness (serial numbers, PSKs); crypto.getRandomValues outside tests. */
  random: (bytes: number) => Uint8Array;
  /** Ids to re-issue although valid; 'all' re-issues everything including the CA. */
  reissue?: 'all' | string[];
}

const SA_ID = 'sa';
/**
 * Digests of certificate+key pairs already proven to match. Parsing a PEM private key costs
 * ~1 ms in OpenSSL 3, which dominated warm renders of large clusters; a pair whose bytes are
 * unchanged since it was proven needs no second proof. Only a cache: deleting it costs time.
 */
const VERIFIED_INDEX = 'verified-pairs.json';

function pairDigest(certPem: string, keyPem: string): string {
  return createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
}

function readVerified(store: PkiStore): Record<string, string> {
  try {
    return JSON.parse(store.read(VERIFIED_INDEX) ?? '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

/** Every id `reissue` accepts for this plan. */
export function credentialIds(plan: Plan): string[] {
  return [CA_ID, SA_ID, ...certSpecs(plan).map((s) => s.id), ...pskIds(plan)];
}

export async function ensurePki(plan: Plan, store: PkiStore, options: PkiOptions): Promise<{ materials: PkiMaterials; report: PkiReport }> {
  const alg = plan.pki.keyAlgorithm;
  const forced = (id: string) => options.reissue === 'all' || (options.reissue?.includes(id) ?? false);
  const report: PkiReport = { issued: [], reused: [] };
  const note = (id: string, reason: string | undefined) => (reason ? report.issued.push({ id, reason }) : report.reused.push(id));

  const caReason = forced(CA_ID) ? 're-issue requested' : await whyReissueCa(plan, store, alg, options.now);
  if (caReason) {
    const x = await loadIssuer();
    const keys = await x.generateKeyPair(alg);
    const cert = await x.createCaCertificate(caCommonName(plan), keys, alg, x.validityFrom(options.now, plan.pki.caValidityDays), options.random(16));
    store.write(`${CA_ID}.key`, await x.privateKeyToPem(keys.privateKey), true);
    store.write(`${CA_ID}.crt`, cert, false);
  }
  note(CA_ID, caReason);
  const ca = { cert: store.read(`${CA_ID}.crt`)!, key: store.read(`${CA_ID}.key`)! };

  const specs = certSpecs(plan);
  const caCert = new X509Certificate(ca.cert);
  const verified = readVerified(store);
  const reasons = specs.map((s) => (forced(s.id) ? 're-issue requested' : whyReissue(s, store, caCert, alg, plan, options.now, verified[s.id])));
  if (reasons.some(Boolean)) {
    const x = await loadIssuer();
    const issuer = { certPem: ca.cert, key: await x.importPrivateKey(ca.key, alg), alg };
    // Keys are generated concurrently on the thread pool; signing is cheap.
    await Promise.all(
      specs.map(async (spec, i) => {
        if (!reasons[i]) return;
        const keys = await x.generateKeyPair(alg);
        const cert = await x.issueCertificate(spec, keys.publicKey, issuer, x.validityFrom(options.now, plan.pki.certValidityDays), options.random(16));
        store.write(`${spec.id}.key`, await x.privateKeyToPem(keys.privateKey), true);
        store.write(`${spec.id}.crt`, cert, false);
      }),
    );
  }
  for (const [i, s] of specs.entries()) note(s.id, reasons[i]);
  const nowVerified = Object.fromEntries(specs.map((s) => [s.id, pairDigest(store.read(`${s.id}.crt`)!, store.read(`${s.id}.key`)!)]));
  if (JSON.stringify(nowVerified) !== JSON.stringify(verified)) store.write(VERIFIED_INDEX, JSON.stringify(nowVerified, null, 1) + '\n', false);

  const saReason = forced(SA_ID) ? 're-issue requested' : keyProblem(store.read(`${SA_ID}.key`), alg).reason;
  if (saReason) {
    const x = await loadIssuer();
    const keys = await x.generateKeyPair(alg);
    store.write(`${SA_ID}.key`, await x.privateKeyToPem(keys.privateKey), true);
    store.write(`${SA_ID}.pub`, await x.publicKeyToPem(keys.publicKey), false);
  }
  note(SA_ID, saReason);

  const psks: Record<string, string> = {};
  for (const id of pskIds(plan)) {
    const existing = store.read(id);
    const reason = forced(id) ? 're-issue requested' : existing && /^[A-Za-z0-9+/]{43}=\n?$/.test(existing) ? undefined : 'missing';
    if (reason) store.write(id, Buffer.from(options.random(32)).toString('base64') + '\n', true);
    note(id, reason);
    psks[id] = store.read(id)!.trim();
  }

  return {
    materials: {
      ca,
      certs: Object.fromEntries(specs.map((s) => [s.id, { cert: store.read(`${s.id}.crt`)!, key: store.read(`${s.id}.key`)! }])),
      serviceAccount: { key: store.read(`${SA_ID}.key`)!, pub: store.read(`${SA_ID}.pub`)! },
      psks,
    },
    report,
  };
}

/** Parses a stored key once: why it cannot be reused, or its facts. */
function keyProblem(keyPem: string | undefined, alg: KeyAlgorithm): { reason?: string; facts?: PrivateKeyFacts } {
  if (!keyPem) return { reason: 'missing' };
  let facts: PrivateKeyFacts;
  try {
    facts = inspectPrivateKey(keyPem);
  } catch {
    return { reason: 'key unreadable' };
  }
  if (facts.algorithm !== alg) return { reason: `key is ${facts.algorithm ?? 'of an unknown type'}, pki.keyAlgorithm is ${alg}` };
  return { facts };
}

function expiryReason(notAfter: Date, now: Date, renewBeforeDays: number): string | undefined {
  if (notAfter.getTime() <= now.getTime()) return `expired ${notAfter.toISOString()}`;
  if (notAfter.getTime() - now.getTime() < renewBeforeDays * 86_400_000) return `expires ${notAfter.toISOString()}, within pki.renewBeforeDays`;
  return undefined;
}

async function whyReissueCa(plan: Plan, store: PkiStore, alg: KeyAlgorithm, now: Date): Promise<string | undefined> {
  const certPem = store.read(`${CA_ID}.crt`);
  if (!certPem) return 'missing';
  const key = keyProblem(store.read(`${CA_ID}.key`), alg);
  if (key.reason) return key.reason;
  try {
    const facts = readCertificate(certPem);
    if (!facts.isCa) return 'not a CA certificate';
    if (facts.commonName !== caCommonName(plan)) return `CA name is ${facts.commonName}, cluster.name wants ${caCommonName(plan)}`;
    if (facts.publicKey !== key.facts!.publicKey) return 'key does not match certificate';
    return expiryReason(facts.notAfter, now, plan.pki.renewBeforeDays);
  } catch {
    return 'certificate unreadable';
  }
}

function whyReissue(spec: CertSpec, store: PkiStore, ca: X509Certificate, alg: KeyAlgorithm, plan: Plan, now: Date, verifiedDigest?: string): string | undefined {
  const certPem = store.read(`${spec.id}.crt`);
  const keyPem = store.read(`${spec.id}.key`);
  if (!certPem) return 'missing';
  const proven = keyPem !== undefined && verifiedDigest === pairDigest(certPem, keyPem);
  const key = proven ? undefined : keyProblem(keyPem, alg);
  if (key?.reason) return key.reason;
  try {
    const cert = new X509Certificate(certPem);
    if (!isSignedBy(cert, ca)) return 'not signed by the current CA';
    const f = readCertificate(cert);
    if (key && f.publicKey !== key.facts!.publicKey) return 'key does not match certificate';
    if (proven && f.publicKeyAlgorithm !== alg) return `key is ${f.publicKeyAlgorithm ?? 'of an unknown type'}, pki.keyAlgorithm is ${alg}`;
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (f.commonName !== spec.commonName || !same(f.organizations, spec.organizations)) return `subject changed (was CN=${f.commonName})`;
    if (!same(f.dnsNames, spec.dnsNames) || !same(f.ipAddresses, spec.ipAddresses)) return 'subject alternative names changed';
    if (!same(f.usages, spec.usages)) return 'usages changed';
    return expiryReason(f.notAfter, now, plan.pki.renewBeforeDays);
  } catch {
    return 'certificate unreadable';
  }
}
