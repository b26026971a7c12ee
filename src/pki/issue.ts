// Makes sure the state holds a valid CA per trust domain, every certificate the plan needs
// (each signed by its own CA), the service-account key pair, the IPsec pre-shared keys and
// the key that encrypts Secrets in etcd — reusing whatever is still right and issuing only
// what is missing, expiring, or no longer matches the plan.
//
// Two credentials are replaced in two steps, because the nodes cannot all switch at once:
// the IKE CA (a node re-provisioned with a certificate from a new CA must still authenticate
// to peers that are not re-provisioned yet) and the encryption key (Secrets written under the
// old key must stay readable until they are rewritten). Replacing one keeps its previous
// generation in the state (`<id>.previous…`) and in the rendered trees until `retire` drops it.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { Plan } from '../plan/plan.ts';
import { caSpecs, certSpecs, IKE_CA_ID, pskIds, type CaId, type CaSpec, type CertSpec } from './specs.ts';
import type { PkiStore } from './store.ts';
import { inspectPrivateKey, isSignedBy, readCertificate, type KeyAlgorithm, type PrivateKeyFacts } from './x509.ts';

/** The issuing side (and its libraries) is loaded only when something must be issued. */
const loadIssuer = () => import('./issuer.ts');

export interface Credential {
  cert: string;
  key: string;
}

interface CaMaterial {
  cert: string;
  /** Only for a CA whose key a node needs (CaSpec.keyOnMaster): the others' keys never leave the state. */
  key?: string;
}

/** A key of the Secrets encryption (EncryptionConfiguration's secretbox provider). */
export interface EncryptionKey {
  name: string;
  /** 32 random bytes, base64. */
  secret: string;
}

export interface PkiMaterials {
  /** By CaId. */
  cas: Partial<Record<CaId, CaMaterial>>;
  /** By CertSpec id. */
  certs: Record<string, Credential>;
  serviceAccount: { key: string; pub: string };
  /** By pskId. */
  psks: Record<string, string>;
  /**
   * While the IKE CA is being replaced: the CA the nodes trusted before and each node's
   * certificate from it (by CertSpec id; only those still valid), so that nodes not yet
   * re-provisioned and nodes already re-provisioned authenticate each other.
   */
  ikeTransition?: { previousCa: string; certs: Record<string, Credential> };
  /** The key in use first, then a previous one while a rotation is open. */
  encryptionKeys: EncryptionKey[];
}

export interface PkiReport {
  issued: { id: string; reason: string }[];
  reused: string[];
  /** Rotations whose previous generation was dropped by this run. */
  retired: RotatingId[];
  /** Rotations still open after this run (their previous generation is rendered too). */
  open: RotatingId[];
}

/** Credentials replaced in two steps (see the file comment); `retire` ends a rotation. */
const ROTATING = ['ike-ca', 'encryption-key'] as const satisfies readonly (CaId | 'encryption-key')[];
export type RotatingId = (typeof ROTATING)[number];

export interface PkiOptions {
  now: Date;
  /** Source of randomness (serial numbers, PSKs); crypto.getRandomValues outside tests. */
  random: (bytes: number) => Uint8Array;
  /** Ids to re-issue although valid; 'all' re-issues everything including the CAs. */
  reissue?: 'all' | string[];
  /** Rotations to finish first: their previous generation leaves the state and the trees. */
  retire?: RotatingId[];
}

/** A request that would lose something the cluster still needs; nothing was written. */
export class PkiRequestError extends Error {
  constructor(
    readonly option: '--reissue' | '--retire',
    readonly value: string,
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${option} ${value}: ${problem}; ${fix}`);
    this.name = 'PkiRequestError';
  }
}

const SA_ID = 'sa';
const ENCRYPTION_KEY_ID = 'encryption-key';
const PREVIOUS = '.previous';
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
  return [...caSpecs(plan).map((c) => c.id), SA_ID, ENCRYPTION_KEY_ID, ...certSpecs(plan).map((s) => s.id), ...pskIds(plan)];
}

/** Rotations whose previous generation the state still holds. */
function openRotations(store: PkiStore): RotatingId[] {
  return ROTATING.filter((id) => store.read(previousName(id)) !== undefined);
}

/**
 * Why these reissue/retire requests would lose what the cluster still needs, if they would:
 * starting a rotation that is already open would drop the generation that nodes (or
 * Secrets) not yet moved still depend on; retiring one that is not open is a mistake.
 */
function rotationConflict(store: PkiStore, reissue: 'all' | string[] | undefined, retire: readonly string[]): PkiRequestError | undefined {
  const open = openRotations(store);
  const unknown = retire.filter((id) => !(ROTATING as readonly string[]).includes(id));
  if (unknown.length)
    return new PkiRequestError('--retire', unknown.join(','), `only a rotation can be retired (${ROTATING.join(', ')})`, `use one of: ${ROTATING.join(', ')}`);
  const notOpen = retire.filter((id) => !open.includes(id as RotatingId));
  if (notOpen.length)
    return new PkiRequestError(
      '--retire',
      notOpen.join(','),
      'no rotation of it is in progress (nothing to retire)',
      open.length ? `rotations in progress: ${open.join(', ')}` : 'nothing is being rotated',
    );
  const stillOpen = open.filter((id) => !retire.includes(id));
  const restarted = stillOpen.filter((id) => reissue === 'all' || reissue?.includes(id));
  if (restarted.length) {
    return new PkiRequestError(
      '--reissue',
      reissue === 'all' ? 'all' : restarted.join(','),
      `would replace ${restarted.join(', ')} again while its previous rotation is still in progress (its previous generation is what not yet re-provisioned nodes, or not yet rewritten Secrets, depend on)`,
      `finish that rotation first (provision every node, then render with --retire ${restarted.join(',')}), or re-issue other ids`,
    );
  }
  return undefined;
}

export async function ensurePki(plan: Plan, store: PkiStore, options: PkiOptions): Promise<{ materials: PkiMaterials; report: PkiReport }> {
  const alg = plan.pki.keyAlgorithm;
  const forced = (id: string) => options.reissue === 'all' || (options.reissue?.includes(id) ?? false);
  const retire = options.retire ?? [];
  const conflict = rotationConflict(store, options.reissue, retire);
  if (conflict) throw conflict;
  const report: PkiReport = { issued: [], reused: [], retired: [...retire], open: [] };
  const note = (id: string, reason: string | undefined) => (reason ? report.issued.push({ id, reason }) : report.reused.push(id));

  for (const id of retire) retireRotation(store, id);

  // One CA per trust domain. The IKE CA's predecessor is set aside before anything replaces it.
  const cas = caSpecs(plan);
  const caReasons = new Map(cas.map((c) => [c.id, forced(c.id) ? 're-issue requested' : whyReissueCa(c, store, alg, options.now, plan.pki.renewBeforeDays)]));
  if (caReasons.get(IKE_CA_ID)) setAsidePreviousIkeGeneration(plan, store, options.now);
  for (const c of cas) {
    const reason = caReasons.get(c.id);
    if (reason) {
      const x = await loadIssuer();
      const keys = await x.generateKeyPair(alg);
      const cert = await x.createCaCertificate(c.commonName, keys, alg, x.validityFrom(options.now, plan.pki.caValidityDays), options.random(16));
      store.write(`${c.id}.key`, await x.privateKeyToPem(keys.privateKey), true);
      store.write(`${c.id}.crt`, cert, false);
    }
    note(c.id, reason);
  }
  const caCerts = new Map(cas.map((c) => [c.id, new X509Certificate(store.read(`${c.id}.crt`)!)]));

  const specs = certSpecs(plan);
  const verified = readVerified(store);
  const reasons = specs.map((s) => (forced(s.id) ? 're-issue requested' : whyReissue(s, store, caCerts.get(s.ca)!, alg, plan, options.now, verified[s.id])));
  if (reasons.some(Boolean)) {
    const x = await loadIssuer();
    const issuers = new Map<CaId, Promise<{ certPem: string; key: Awaited<ReturnType<typeof x.importPrivateKey>>; alg: KeyAlgorithm }>>();
    const issuerOf = (ca: CaId) => {
      if (!issuers.has(ca))
        issuers.set(
          ca,
          x.importPrivateKey(store.read(`${ca}.key`)!, alg).then((key) => ({ certPem: store.read(`${ca}.crt`)!, key, alg })),
        );
      return issuers.get(ca)!;
    };
    // Keys are generated concurrently on the thread pool; signing is cheap.
    await Promise.all(
      specs.map(async (spec, i) => {
        if (!reasons[i]) return;
        const keys = await x.generateKeyPair(alg);
        const cert = await x.issueCertificate(
          spec,
          keys.publicKey,
          await issuerOf(spec.ca),
          x.validityFrom(options.now, plan.pki.certValidityDays),
          options.random(16),
        );
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

  note(ENCRYPTION_KEY_ID, ensureEncryptionKey(store, forced(ENCRYPTION_KEY_ID), options));

  report.open = openRotations(store);
  return {
    materials: {
      cas: Object.fromEntries(cas.map((c) => [c.id, { cert: store.read(`${c.id}.crt`)!, ...(c.keyOnMaster && { key: store.read(`${c.id}.key`)! }) }])),
      certs: Object.fromEntries(specs.map((s) => [s.id, { cert: store.read(`${s.id}.crt`)!, key: store.read(`${s.id}.key`)! }])),
      serviceAccount: { key: store.read(`${SA_ID}.key`)!, pub: store.read(`${SA_ID}.pub`)! },
      psks,
      ...ikeTransition(plan, store, options.now),
      encryptionKeys: [ENCRYPTION_KEY_ID, previousName(ENCRYPTION_KEY_ID)].flatMap((name) => {
        const text = store.read(name);
        return text === undefined ? [] : [parseEncryptionKey(text, `${store.location}/${name}`)];
      }),
    },
    report,
  };
}

function previousName(id: string): string {
  return `${id}${PREVIOUS}`;
}

/** `ike-ca` → ike-ca.previous + every ipsec@*.previous.{crt,key}; `encryption-key` → encryption-key.previous. */
function retireRotation(store: PkiStore, id: RotatingId): void {
  store.remove(previousName(id));
  if (id === IKE_CA_ID) {
    for (const name of store.list()) if (/^ipsec@.*\.previous\.(crt|key)$/.test(name)) store.remove(name);
  }
}

const previousCert = (specId: string) => ({ cert: `${specId}${PREVIOUS}.crt`, key: `${specId}${PREVIOUS}.key` });

/**
 * Before the IKE CA is replaced: keeps the CA the nodes trust for IKE now, and each node's
 * certificate from it, as the previous generation. In a state from before the trust domains
 * were split there is no IKE CA yet, and the IKE certificates come from the cluster CA: that
 * one is then the previous generation (trusted for IKE only until the rotation is retired).
 * A rotation already open keeps its previous generation (the one nodes may still be on).
 */
function setAsidePreviousIkeGeneration(plan: Plan, store: PkiStore, now: Date): void {
  if (store.read(previousName(IKE_CA_ID)) !== undefined) return;
  const caPem = store.read(`${IKE_CA_ID}.crt`) ?? store.read('ca.crt');
  if (caPem === undefined) return;
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch {
    return;
  }
  if (new Date(ca.validTo) <= now) return;
  const kept = certSpecs(plan)
    .filter((s) => s.ca === IKE_CA_ID)
    .flatMap((s) => {
      const cert = store.read(`${s.id}.crt`);
      const key = store.read(`${s.id}.key`);
      return cert !== undefined && key !== undefined && stillValidFrom(cert, key, ca, now) ? [{ id: s.id, cert, key }] : [];
    });
  if (!kept.length) return;
  store.write(previousName(IKE_CA_ID), caPem, false);
  for (const k of kept) {
    store.write(previousCert(k.id).cert, k.cert, false);
    store.write(previousCert(k.id).key, k.key, true);
  }
}

/** A certificate that `ca` signed, not expired, whose key is the one given. */
function stillValidFrom(certPem: string, keyPem: string, ca: X509Certificate, now: Date): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return isSignedBy(cert, ca) && new Date(cert.validTo) > now && cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** The open IKE transition as the renderers need it: the previous CA and the nodes' still valid certificates from it. */
function ikeTransition(plan: Plan, store: PkiStore, now: Date): Pick<PkiMaterials, 'ikeTransition'> {
  const previousCa = store.read(previousName(IKE_CA_ID));
  if (previousCa === undefined || plan.ipsec.auth !== 'pubkey') return {};
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(previousCa);
  } catch {
    return {};
  }
  const certs: Record<string, Credential> = {};
  for (const s of certSpecs(plan).filter((spec) => spec.ca === IKE_CA_ID)) {
    const cert = store.read(previousCert(s.id).cert);
    const key = store.read(previousCert(s.id).key);
    if (cert !== undefined && key !== undefined && stillValidFrom(cert, key, ca, now)) certs[s.id] = { cert, key };
  }
  return { ikeTransition: { previousCa, certs } };
}

/** `key-20260115120000-1a2b <base64 of 32 bytes>` */
const ENCRYPTION_KEY_FORMAT = /^(key-[0-9]{14}-[0-9a-f]{4}) ([A-Za-z0-9+/]{43}=)\n?$/;

function parseEncryptionKey(text: string, where: string): EncryptionKey {
  const m = ENCRYPTION_KEY_FORMAT.exec(text);
  if (!m) {
    // Never replaced silently: Secrets in etcd are encrypted with it, and a new key cannot read them.
    throw new Error(
      `${where} is damaged (not "key-<14 digits>-<4 hex> <base64 of 32 bytes>"). The API server encrypts Secrets with this key: restore the file from a backup of the state dir; if the cluster holds no Secret you need, delete it and render again to start with a new key.`,
    );
  }
  return { name: m[1]!, secret: m[2]! };
}

/**
 * Creates the Secrets encryption key if there is none; on request, makes a new one the key
 * in use and keeps the old one as the previous generation, still able to read (rotation).
 * A damaged key stops the render instead of being replaced (see parseEncryptionKey).
 */
function ensureEncryptionKey(store: PkiStore, forced: boolean, options: PkiOptions): string | undefined {
  const existing = store.read(ENCRYPTION_KEY_ID);
  const current = existing === undefined ? undefined : parseEncryptionKey(existing, `${store.location}/${ENCRYPTION_KEY_ID}`);
  const reason = current === undefined ? 'missing' : forced ? 're-issue requested' : undefined;
  if (!reason) return undefined;
  if (current) store.write(previousName(ENCRYPTION_KEY_ID), `${current.name} ${current.secret}\n`, true);
  const stamp = options.now
    .toISOString()
    .replace(/[^0-9]/g, '')
    .slice(0, 14);
  const name = `key-${stamp}-${Buffer.from(options.random(2)).toString('hex')}`;
  store.write(ENCRYPTION_KEY_ID, `${name} ${Buffer.from(options.random(32)).toString('base64')}\n`, true);
  return reason;
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

function whyReissueCa(spec: CaSpec, store: PkiStore, alg: KeyAlgorithm, now: Date, renewBeforeDays: number): string | undefined {
  const certPem = store.read(`${spec.id}.crt`);
  if (!certPem) return 'missing';
  const key = keyProblem(store.read(`${spec.id}.key`), alg);
  if (key.reason) return key.reason;
  try {
    const facts = readCertificate(certPem);
    if (!facts.isCa) return 'not a CA certificate';
    if (facts.commonName !== spec.commonName) return `CA name is ${facts.commonName}, cluster.name wants ${spec.commonName}`;
    if (facts.publicKey !== key.facts!.publicKey) return 'key does not match certificate';
    return expiryReason(facts.notAfter, now, renewBeforeDays);
  } catch {
    return 'certificate unreadable';
  }
}

function whyReissue(
  spec: CertSpec,
  store: PkiStore,
  ca: X509Certificate,
  alg: KeyAlgorithm,
  plan: Plan,
  now: Date,
  verifiedDigest?: string,
): string | undefined {
  const certPem = store.read(`${spec.id}.crt`);
  const keyPem = store.read(`${spec.id}.key`);
  if (!certPem) return 'missing';
  const proven = keyPem !== undefined && verifiedDigest === pairDigest(certPem, keyPem);
  const key = proven ? undefined : keyProblem(keyPem, alg);
  if (key?.reason) return key.reason;
  try {
    const cert = new X509Certificate(certPem);
    if (!isSignedBy(cert, ca)) return `not signed by its CA (${spec.ca})`;
    const f = readCertificate(cert);
    if (key && f.publicKey !== key.facts!.publicKey) return 'key does not match certificate';
    if (proven && f.publicKeyAlgorithm !== alg) return `key is ${f.publicKeyAlgorithm ?? 'of an unknown type'}, pki.keyAlgorithm is ${alg}`;
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (f.commonName !== spec.commonName || !same(f.organizations, spec.organizations))
      return `subject changed (was CN=${f.commonName}${f.organizations.map((o) => `, O=${o}`).join('')})`;
    if (!same(f.dnsNames, spec.dnsNames) || !same(f.ipAddresses, spec.ipAddresses)) return 'subject alternative names changed';
    if (!same(f.usages, spec.usages)) return 'usages changed';
    return expiryReason(f.notAfter, now, plan.pki.renewBeforeDays);
  } catch {
    return 'certificate unreadable';
  }
}
