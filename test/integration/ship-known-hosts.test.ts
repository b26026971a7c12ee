// What OpenSSH makes of kube-ipsec's known_hosts handling: fingerprints printed as
// `ssh-keygen -l` prints them, entries hashed by `ssh-keygen -H` matched, and a key that
// --accept-new-host-keys recorded found by `ssh-keygen -F` (openssh-client).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHostKey, fingerprint, keyType, parseKnownHosts, type HostKeyPolicy } from '../../src/ship/known-hosts.ts';
import { hostKeyPolicy } from '../helpers/host-keys.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-known-hosts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real host key pair from ssh-keygen: its public line and blob. */
function hostKey(name: string, type: 'ed25519' | 'ecdsa') {
  const file = join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
  if (r.status !== 0) throw new Error(r.stderr.toString());
  const [kind, b64] = readFileSync(`${file}.pub`, 'utf8').split(' ') as [string, string];
  return { file, kind, b64, blob: Buffer.from(b64, 'base64') };
}
const ed = hostKey('ed', 'ed25519');
const ec = hostKey('ec', 'ecdsa');
const other = hostKey('other', 'ed25519');

const policy = (over: Partial<HostKeyPolicy> = {}) => hostKeyPolicy(dir, over);

describe('host keys, as OpenSSH sees them', () => {
  it('print fingerprints exactly as ssh-keygen -l does', () => {
    for (const k of [ed, ec]) {
      const printed = spawnSync('ssh-keygen', ['-lf', `${k.file}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1];
      expect(fingerprint(k.blob)).toBe(printed);
      expect(keyType(k.blob)).toBe(k.kind);
    }
  });

  it('match entries hashed by ssh-keygen -H', () => {
    const file = join(dir, 'hashed');
    writeFileSync(file, `192.168.10.21 ${ed.kind} ${ed.b64}\n[127.0.0.1]:2222 ${ec.kind} ${ec.b64}\n`);
    expect(spawnSync('ssh-keygen', ['-H', '-f', file]).status).toBe(0);
    const entries = parseKnownHosts(readFileSync(file, 'utf8'), file);
    expect(entries.every((e) => e.hosts.startsWith('|1|'))).toBe(true);
    expect(checkHostKey(policy({ knownHosts: [file] }), entries, ed.blob)).toMatchObject({ ok: true });
    expect(checkHostKey(policy({ host: '127.0.0.1', port: 2222, knownHosts: [file] }), entries, ec.blob)).toMatchObject({ ok: true });
    expect(checkHostKey(policy({ host: '127.0.0.1', port: 2222, knownHosts: [file] }), entries, other.blob)).toMatchObject({ ok: false, problem: 'changed' });
  });

  it('record a new key where ssh-keygen -F finds it', () => {
    const file = join(dir, 'kh-new');
    expect(checkHostKey(policy({ knownHosts: [file], acceptNew: true }), [], ed.blob)).toEqual({ ok: true, how: `new, recorded in ${file}` });
    const r = spawnSync('ssh-keygen', ['-F', '192.168.10.21', '-f', file], { encoding: 'utf8' });
    expect(r.stdout).toContain(ed.b64);
  });
});
