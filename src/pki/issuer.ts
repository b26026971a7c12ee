// Creating keys and certificates: WebCrypto (native OpenSSL underneath) for keys and
// signatures, @peculiar/x509 for the certificate structure. Key generation runs on libuv's
// thread pool, so a cluster's keys are made in parallel.
//
// Why ECDSA P-256 by default, and why not node-forge: forge builds only RSA certificates,
// and RSA-2048 generation costs ~220 ms per key natively (~2 s in forge's JavaScript) — a
// cold render of the default cluster needs ~25 keys. ECDSA P-256 keys take well under a
// millisecond, and every consumer here accepts them (Kubernetes components, etcd,
// strongSwan with its openssl plugin, kubectl). RSA-2048 stays available as an option.
//
// This module (and @peculiar/x509 with its reflect-metadata polyfill, ~0.4 s to load) is
// imported only when something has to be issued; warm renders never load it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto } from 'node:crypto';
import type { CertSpec } from './specs.ts';
import { EKU, type KeyAlgorithm } from './x509.ts';

type CryptoKey = webcrypto.CryptoKey;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const subtle = webcrypto.subtle;

const ALGORITHMS = {
  'ecdsa-p256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  },
  'rsa-2048': {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
} as const;

export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export async function generateKeyPair(alg: KeyAlgorithm): Promise<KeyPair> {
  return (await subtle.generateKey(ALGORITHMS[alg].generate, true, ['sign', 'verify'])) as KeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', new Uint8Array(await subtle.exportKey('pkcs8', key)));
}

export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  return pem('PUBLIC KEY', new Uint8Array(await subtle.exportKey('spki', key)));
}

export async function importPrivateKey(pemText: string, alg: KeyAlgorithm): Promise<CryptoKey> {
  const der = createPrivateKey(pemText).export({ format: 'der', type: 'pkcs8' });
  return subtle.importKey('pkcs8', der, ALGORITHMS[alg].generate, true, ['sign']);
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export function validityFrom(now: Date, days: number): Validity {
  // Backdate a little: nodes' clocks are rarely exactly in step with the host's.
  return { notBefore: new Date(now.getTime() - 5 * 60_000), notAfter: new Date(now.getTime() + days * 86_400_000) };
}

function serialNumber(random: Uint8Array): string {
  // RFC 5280: positive, at most 20 octets. Clearing the top bit keeps it positive.
  const bytes = random.slice(0, 16);
  bytes[0] = bytes[0]! & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

function name(commonName: string, organizations: string[]): x509.JsonName {
  return [...organizations.map((o) => ({ O: [o] })), { CN: [commonName] }];
}

export async function createCaCertificate(commonName: string, keys: KeyPair, alg: KeyAlgorithm, validity: Validity, random: Uint8Array): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(random),
    name: name(commonName, []),
    ...validity,
    signingAlgorithm: ALGORITHMS[alg].sign,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return cert.toString('pem') + '\n';
}

export interface Issuer {
  certPem: string;
  key: CryptoKey;
  alg: KeyAlgorithm;
}

export async function issueCertificate(spec: CertSpec, publicKey: CryptoKey, issuer: Issuer, validity: Validity, random: Uint8Array): Promise<string> {
  const ca = new x509.X509Certificate(issuer.certPem);
  const keyUsage = x509.KeyUsageFlags.digitalSignature | (issuer.alg === 'rsa-2048' ? x509.KeyUsageFlags.keyEncipherment : 0);
  const sans = [...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...spec.ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(random),
    subject: name(spec.commonName, spec.organizations),
    issuer: ca.subjectName,
    ...validity,
    signingAlgorithm: ALGORITHMS[issuer.alg].sign,
    publicKey,
    signingKey: issuer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(keyUsage, true),
      new x509.ExtendedKeyUsageExtension(
        spec.usages.map((u) => EKU[u]),
        false,
      ),
      ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans, false)] : []),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  return cert.toString('pem') + '\n';
}
