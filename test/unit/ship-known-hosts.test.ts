// known_hosts handling, pure: keys made in Node (the SSH wire format of their public halves).
// What OpenSSH itself makes of the same files (fingerprints, hashed entries, a recorded key)
// is test/integration/ship-known-hosts.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkHostKey,
  describeRefusal,
  fingerprint,
  keyType,
  hostMatches,
  knownKeyTypes,
  parseKnownHosts,
  type HostKeyPolicy,
} from '../../src/ship/known-hosts.ts';
import { hostKeyPolicy } from '../helpers/host-keys.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-known-hosts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An SSH string: uint32 length, then the bytes (RFC 4251, 5). */
const sshString = (b: Buffer | string) => {
  const bytes = Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
};

/** A host key's public blob as sshd presents it (RFC 8709 for Ed25519, RFC 5656 for ECDSA). */
function hostKey(type: 'ed25519' | 'ecdsa') {
  if (type === 'ed25519') {
    const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
    const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.from(jwk.x!, 'base64url'))]);
    return { kind: 'ssh-ed25519', b64: blob.toString('base64'), blob };
  }
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const blob = Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString('nistp256'), sshString(point)]);
  return { kind: 'ecdsa-sha2-nistp256', b64: blob.toString('base64'), blob };
}
const ed = hostKey('ed25519');
const ec = hostKey('ecdsa');
const other = hostKey('ed25519');

const policy = (over: Partial<HostKeyPolicy> = {}) => hostKeyPolicy(dir, over);

describe('host keys', () => {
  it('name their type from the blob', () => {
    expect(keyType(ed.blob)).toBe('ssh-ed25519');
    expect(keyType(ec.blob)).toBe('ecdsa-sha2-nistp256');
    expect(fingerprint(ed.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('match plain, [host]:port, pattern and negated entries', () => {
    expect(hostMatches('192.168.10.21', '192.168.10.21', 22)).toBe(true);
    expect(hostMatches('192.168.10.21', '192.168.10.21', 2222)).toBe(false);
    expect(hostMatches('[192.168.10.21]:2222', '192.168.10.21', 2222)).toBe(true);
    expect(hostMatches('minion1,192.168.10.*', '192.168.10.23', 22)).toBe(true);
    expect(hostMatches('192.168.10.*,!192.168.10.23', '192.168.10.23', 22)).toBe(false);
    expect(hostMatches('192.168.10.?', '192.168.10.21', 22)).toBe(false);
  });

  it('refuse a changed key, naming the old entry and the fix', () => {
    const file = join(dir, 'kh-changed');
    writeFileSync(file, `# comment\n192.168.10.21 ${ed.kind} ${ed.b64}\n`);
    const entries = parseKnownHosts(readFileSync(file, 'utf8'), file);
    const v = checkHostKey(policy({ knownHosts: [file] }), entries, other.blob);
    expect(v).toMatchObject({ ok: false, problem: 'changed', presented: fingerprint(other.blob) });
    if (v.ok) throw new Error('unreachable');
    expect(v.detail).toContain(`${file}:2 (ssh-ed25519 ${fingerprint(ed.blob)})`);
    expect(describeRefusal('minion1', policy({ knownHosts: [file] }), v)).toMatch(
      /minion1: host key of 192\.168\.10\.21 refused: changed .*\n.*man-in-the-middle.*\n.*ssh-keygen -R '192\.168\.10\.21' -f .*kh-changed/,
    );
    expect(knownKeyTypes(policy(), entries)).toEqual(['ssh-ed25519']);
  });

  it('refuse an unknown key unless asked to record it; a recorded key is then known', () => {
    const file = join(dir, 'kh-new');
    const unknown = checkHostKey(policy({ knownHosts: [file] }), [], ed.blob);
    expect(unknown).toMatchObject({ ok: false, problem: 'unknown' });
    if (unknown.ok) throw new Error('unreachable');
    expect(describeRefusal('minion1', policy({ knownHosts: [file] }), unknown)).toMatch(/pin it as nodes\[\]\.ssh\.hostKey .* --accept-new-host-keys/);

    expect(checkHostKey(policy({ knownHosts: [file], acceptNew: true }), [], ed.blob)).toEqual({ ok: true, how: `new, recorded in ${file}` });
    const entries = parseKnownHosts(readFileSync(file, 'utf8'), file);
    expect(checkHostKey(policy({ knownHosts: [file] }), entries, ed.blob)).toEqual({ ok: true, how: `${file}:1` });
    // Accepting new keys never accepts a changed one.
    expect(checkHostKey(policy({ knownHosts: [file], acceptNew: true }), entries, other.blob)).toMatchObject({ ok: false, problem: 'changed' });
  });

  it('check a pinned fingerprint, and refuse revoked keys', () => {
    expect(checkHostKey(policy({ pinned: fingerprint(ed.blob) }), [], ed.blob)).toEqual({ ok: true, how: 'pinned in cluster.yaml' });
    expect(checkHostKey(policy({ pinned: fingerprint(ed.blob) }), [], other.blob)).toMatchObject({
      ok: false,
      problem: 'changed',
      detail: `cluster.yaml pins ${fingerprint(ed.blob)}`,
    });
    const entries = parseKnownHosts(`@revoked * ${ed.kind} ${ed.b64}\n192.168.10.21 ${ed.kind} ${ed.b64}\n`, 'kh');
    expect(checkHostKey(policy(), entries, ed.blob)).toMatchObject({ ok: false, problem: 'revoked' });
  });

  it('skip lines whose key blob is not of the type they name', () => {
    expect(parseKnownHosts(`host ssh-rsa ${ed.b64}\nhost ${ed.kind} ${ed.b64}\n`, 'kh')).toHaveLength(1);
  });
});
