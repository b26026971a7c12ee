// The inbound check's crafted frames against real tools: decoded by tcpdump, and the script
// that sends them run by a real shell (printf, base64) up to socat.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { craftFrame, internetChecksum, sendFramesScript, type CraftedPacket } from '../../src/check/frames.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-inbound-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };
const icmp: CraftedPacket = { ...MACS, src: '192.168.10.254', dst: '10.240.1.2', proto: 'icmp', tag: 40000 };
const syn: CraftedPacket = { ...MACS, src: '10.240.2.2', dst: '10.240.1.2', proto: 'tcp', tag: 40003, dport: 8080 };

/** The frames as a pcap file (libpcap format, Ethernet), decoded by tcpdump. */
function tcpdump(frames: Buffer[], ...flags: string[]): string[] {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const records = frames.map((f) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    return Buffer.concat([h, f]);
  });
  const file = join(dir, `frames-${flags.join('')}.pcap`);
  writeFileSync(file, Buffer.concat([header, ...records]));
  const r = spawnSync('tcpdump', ['-nn', '-t', ...flags, '-r', file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('crafted frames', () => {
  it('are what tcpdump reads: an ICMP echo and a TCP SYN, tagged in the IPv4 identification, every checksum correct', () => {
    const frames = [craftFrame(icmp), craftFrame(syn)];
    expect(tcpdump(frames)).toEqual([
      'IP 192.168.10.254 > 10.240.1.2: ICMP echo request, id 40000, seq 1, length 24',
      'IP 10.240.2.2.40003 > 10.240.1.2.8080: Flags [S], seq 40003, win 65535, length 0',
    ]);
    const verbose = tcpdump(frames, '-vv').join('\n');
    expect(verbose).toContain('ttl 64, id 40000, offset 0, flags [none], proto ICMP (1), length 44');
    expect(verbose).toContain('id 40003, offset 0, flags [none], proto TCP (6), length 40');
    expect(verbose).toMatch(/Flags \[S\], cksum 0x[0-9a-f]{4} \(correct\)/);
    expect(verbose).not.toMatch(/bad cksum|wrong|incorrect/i);
    // The IPv4 header sums to zero with its checksum in it.
    for (const f of frames) expect(internetChecksum(f.subarray(14, 34))).toBe(0);
    expect(frames[0]!.subarray(0, 14).toString('hex')).toBe('020000000002020000000001' + '0800');
  });

  it('are sent one socat each, through the packet socket of the named link, byte for byte', () => {
    const frames = [craftFrame(icmp), craftFrame(syn)];
    const script = sendFramesScript("ut-eth'x", frames);
    const parts = script.split(' && ');
    expect(parts).toHaveLength(2);
    parts.forEach((part, i) => {
      const [decode, send] = part.split(' | socat ');
      expect(send).toBe(`-u STDIN 'INTERFACE:ut-eth'\\''x'`);
      // What socat would read: the shell's own printf and base64, run for real.
      const bytes = spawnSync('sh', ['-c', decode!]).stdout;
      expect(Buffer.compare(bytes, frames[i]!)).toBe(0);
    });
  });
});
