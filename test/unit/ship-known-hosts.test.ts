import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHostKey, describeRefusal, fingerprint, hostMatches, keyType, knownKeyTypes, parseKnownHosts, type HostKeyPolicy } from '../../src/ship/known-hosts.ts';

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

const policy = (over: Partial<HostKeyPolicy> = {}): HostKeyPolicy => ({ host: '192.168.10.21', port: 22, knownHosts: [join(dir, 'kh')], acceptNew: false, ...over });

describe('host keys', () => {
  it('print fingerprints exactly as ssh-keygen -l does', () => {
    for (const k of [ed, ec]) {
      const printed = spawnSync('ssh-keygen', ['-lf', `${k.file}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1];
      expect(fingerprint(k.blob)).toBe(printed);
      expect(keyType(k.blob)).toBe(k.kind);
    }
  });

  it('match plain, [host]:port, pattern and negated entries', () => {
    expect(hostMatches('192.168.10.21', '192.168.10.21', 22)).toBe(true);
    expect(hostMatches('192.168.10.21', '192.168.10.21', 2222)).toBe(false);
    expect(hostMatches('[192.168.10.21]:2222', '192.168.10.21', 2222)).toBe(true);
    expect(hostMatches('minion1,192.168.10.*', '192.168.10.23', 22)).toBe(true);
    expect(hostMatches('192.168.10.*,!192.168.10.23', '192.168.10.23', 22)).toBe(false);
    expect(hostMatches('192.168.10.?', '192.168.10.21', 22)).toBe(false);
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

  it('refuse a changed key, naming the old entry and the fix', () => {
    const file = join(dir, 'kh-changed');
    writeFileSync(file, `# comment\n192.168.10.21 ${ed.kind} ${ed.b64}\n`);
    const entries = parseKnownHosts(readFileSync(file, 'utf8'), file);
    const v = checkHostKey(policy({ knownHosts: [file] }), entries, other.blob);
    expect(v).toMatchObject({ ok: false, problem: 'changed', presented: fingerprint(other.blob) });
    if (v.ok) throw new Error('unreachable');
    expect(v.detail).toContain(`${file}:2 (ssh-ed25519 ${fingerprint(ed.blob)})`);
    expect(describeRefusal('minion1', policy({ knownHosts: [file] }), v)).toMatch(/minion1: host key of 192\.168\.10\.21 refused: changed .*\n.*man-in-the-middle.*\n.*ssh-keygen -R '192\.168\.10\.21' -f .*kh-changed/);
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
    // ssh itself agrees with what was recorded.
    const r = spawnSync('ssh-keygen', ['-F', '192.168.10.21', '-f', file], { encoding: 'utf8' });
    expect(r.stdout).toContain(ed.b64);
  });

  it('check a pinned fingerprint, and refuse revoked keys', () => {
    expect(checkHostKey(policy({ pinned: fingerprint(ed.blob) }), [], ed.blob)).toEqual({ ok: true, how: 'pinned in cluster.yaml' });
    expect(checkHostKey(policy({ pinned: fingerprint(ed.blob) }), [], other.blob)).toMatchObject({ ok: false, problem: 'changed', detail: `cluster.yaml pins ${fingerprint(ed.blob)}` });
    const entries = parseKnownHosts(`@revoked * ${ed.kind} ${ed.b64}\n192.168.10.21 ${ed.kind} ${ed.b64}\n`, 'kh');
    expect(checkHostKey(policy(), entries, ed.blob)).toMatchObject({ ok: false, problem: 'revoked' });
  });

  it('skip lines whose key blob is not of the type they name', () => {
    expect(parseKnownHosts(`host ssh-rsa ${ed.b64}\nhost ${ed.kind} ${ed.b64}\n`, 'kh')).toHaveLength(1);
  });
});
