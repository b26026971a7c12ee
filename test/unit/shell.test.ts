// shellQuote: every word survives a real POSIX shell unchanged.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shellQuote } from '../../src/shell.ts';

describe('shellQuote', () => {
  it('leaves plain words bare and quotes the rest', () => {
    expect(shellQuote('/etc/ipsec.conf')).toBe('/etc/ipsec.conf');
    expect(shellQuote('root@192.168.10.21')).toBe('root@192.168.10.21');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote('')).toBe("''");
  });

  it('round-trips through sh: quotes, $, globs, newlines, backslashes', () => {
    const words = ["it's", '$HOME', '*', 'a\nb', 'back\\slash', '"dq"', '`id`', '; rm -rf /', ''];
    const r = spawnSync('sh', ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(words);
  });
});
