// The tar stream provision sends, as GNU tar on a node unpacks and lists it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { tarSize, tarStream, type TarEntry } from '../../src/ship/tar.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Extracts with GNU tar the way provision/session does (-p, --no-same-owner). */
function extract(archive: Buffer, into: string): { status: number | null; stderr: string } {
  mkdirSync(into, { recursive: true });
  const r = spawnSync('tar', ['-x', '-p', '--no-same-owner', '-f', '-', '-C', into], { input: archive, encoding: 'buffer' });
  return { status: r.status, stderr: r.stderr.toString() };
}

describe('tar stream, through GNU tar', () => {
  it('is unpacked by GNU tar with contents and modes, long paths included', async () => {
    const big = join(dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(3 * 1024 * 1024 + 17, 7));
    const long = `tree/${'d'.repeat(60)}/${'e'.repeat(60)}/key.pem`;
    const entries: TarEntry[] = [
      { path: 'tree/etc/ipsec.secrets', mode: 0o600, content: ': PSK "x"\n' },
      { path: 'provision/apply', mode: 0o755, content: '#!/bin/bash\n' },
      { path: 'empty', mode: 0o644, content: '' },
      { path: long, mode: 0o644, content: 'ünïcode\n' },
      { path: 'tree/opt/cni/bin/ipsec-cni', mode: 0o755, file: big, size: statSync(big).size },
    ];
    const archive = await buffer(tarStream(entries));
    expect(archive.length).toBe(tarSize(entries));
    expect(archive.length % 10240).toBe(0);
    const out = join(dir, 'x1');
    const r = extract(archive, out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(join(out, 'tree/etc/ipsec.secrets'), 'utf8')).toBe(': PSK "x"\n');
    expect(statSync(join(out, 'tree/etc/ipsec.secrets')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'provision/apply')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, 'empty'), 'utf8')).toBe('');
    expect(readFileSync(join(out, long), 'utf8')).toBe('ünïcode\n');
    expect(readFileSync(join(out, 'tree/opt/cni/bin/ipsec-cni')).equals(readFileSync(big))).toBe(true);
  });

  it('lists the same entries as tar -t', async () => {
    const entries: TarEntry[] = [
      { path: 'a/b', mode: 0o644, content: 'x' },
      { path: 'c', mode: 0o600, content: 'y' },
    ];
    const r = spawnSync('tar', ['-tvf', '-'], { input: await buffer(tarStream(entries, 0)), encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.split(/\s+/)[0], l.split(/\s+/).pop()]),
    ).toEqual([
      ['-rw-r--r--', 'a/b'],
      ['-rw-------', 'c'],
    ]);
  });
});
