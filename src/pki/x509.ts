// Reading and checking X.509 material with Node's native crypto (OpenSSL): what a
// certificate says, whether a given CA signed it, what a private key is. Creating
// material lives in issuer.ts, loaded only when something must be issued.
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { ExtendedUsage } from './specs.ts';

export type KeyAlgorithm = 'ecdsa-p256' | 'rsa-2048';

export const EKU: Record<ExtendedUsage, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  // id-kp-ipsecIKE (RFC 4945 5.1.3.12): the purpose an IKE peer that checks EKUs looks for.
  ipsecIKE: '1.3.6.1.5.5.7.3.17',
};

export interface PrivateKeyFacts {
  /** Undefined when the key is neither of our two types. */
  algorithm: KeyAlgorithm | undefined;
  /** SPKI DER of the public half, base64 (compared with a certificate's). */
  publicKey: string;
}

/** Algorithm and public half of a PEM private key (one native parse). */
export function inspectPrivateKey(pemText: string): PrivateKeyFacts {
  const key = createPrivateKey(pemText);
  return { algorithm: keyAlgorithmOf(key), publicKey: createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64') };
}

function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | undefined {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  if (key.asymmetricKeyType === 'rsa' && details?.modulusLength === 2048) return 'rsa-2048';
  return undefined;
}

/** What a certificate says, in the terms of a CertSpec. */
export interface CertFacts {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  usages: ExtendedUsage[];
  isCa: boolean;
  notAfter: Date;
  issuer: string;
  subject: string;
  /** SPKI DER, base64. */
  publicKey: string;
  publicKeyAlgorithm: KeyAlgorithm | undefined;
}

const EKU_NAMES = Object.entries(EKU) as [ExtendedUsage, string][];

// Native parsing: a warm render of a large cluster checks a thousand certificates.
export function readCertificate(certPem: string | X509Certificate): CertFacts {
  const cert = typeof certPem === 'string' ? new X509Certificate(certPem) : certPem;
  const subject = distinguishedName(cert.subject);
  const sans = (cert.subjectAltName ?? '').split(', ').filter(Boolean);
  const sanValues = (prefix: string) => sans.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  return {
    commonName: subject.filter(([k]) => k === 'CN').map(([, v]) => v)[0] ?? '',
    organizations: subject.filter(([k]) => k === 'O').map(([, v]) => v),
    dnsNames: sanValues('DNS:'),
    ipAddresses: sanValues('IP Address:'),
    usages: (cert.keyUsage ?? []).flatMap((oid) => EKU_NAMES.filter(([, o]) => o === oid).map(([name]) => name)),
    isCa: cert.ca,
    notAfter: new Date(cert.validTo),
    issuer: cert.issuer,
    subject: cert.subject,
    publicKey: cert.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    publicKeyAlgorithm: keyAlgorithmOf(cert.publicKey),
  };
}

/** `O=system:nodes\nCN=system:node:minion1` → [['O','system:nodes'], ['CN', …]] in order. */
function distinguishedName(text: string): [string, string][] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((rdn) => {
      const eq = rdn.indexOf('=');
      return [rdn.slice(0, eq), rdn.slice(eq + 1)];
    });
}

export function isSignedBy(certPem: string | X509Certificate, caPem: string | X509Certificate): boolean {
  const cert = typeof certPem === 'string' ? new X509Certificate(certPem) : certPem;
  const ca = typeof caPem === 'string' ? new X509Certificate(caPem) : caPem;
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}
