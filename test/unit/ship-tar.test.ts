// The tar stream provision sends, pure; GNU tar unpacking it is test/integration/ship-tar.test.ts.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { tarSize, tarStream, type TarEntry } from '../../src/ship/tar.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tar stream', () => {
  it('is a whole number of 10 KiB records, as long as tarSize says, one ustar header per entry', async () => {
    const entries: TarEntry[] = [
      { path: 'tree/etc/ipsec.secrets', mode: 0o600, content: ': PSK "x"\n' },
      { path: 'provision/apply', mode: 0o755, content: '#!/bin/bash\n' },
    ];
    const archive = await buffer(tarStream(entries));
    expect(archive.length).toBe(tarSize(entries));
    expect(archive.length % 10240).toBe(0);
    // ustar (POSIX.1-1988): name at 0 (100 bytes), mode at 100 (octal), magic "ustar" at 257.
    const header = archive.subarray(0, 512);
    expect(header.toString('latin1', 0, 100).replace(/\0+$/, '')).toBe('tree/etc/ipsec.secrets');
    expect(parseInt(header.toString('latin1', 100, 108), 8)).toBe(0o600);
    expect(header.toString('latin1', 257, 262)).toBe('ustar');
  });

  it('fails instead of corrupting the stream when a file shrinks while it is sent', async () => {
    const f = join(dir, 'shrinks');
    writeFileSync(f, Buffer.alloc(5000, 1));
    const stream = tarStream([{ path: 'f', mode: 0o644, file: f, size: 5000 }]);
    truncateSync(f, 100);
    await expect(buffer(stream)).rejects.toThrow(/changed size while being archived \(5000 → 100 bytes\)/);
  });

  it('refuses absolute paths and ..', async () => {
    for (const path of ['/etc/passwd', 'tree/../../escape']) {
      await expect(buffer(tarStream([{ path, mode: 0o644, content: '' }]))).rejects.toThrow(/must be a relative path without \.\./);
    }
  });
});
