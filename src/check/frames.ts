// Crafted packets, as an attacker on the underlay sends them: whole Ethernet frames built
// here, byte by byte, and written to a link through a packet socket (socat's INTERFACE
// address), so that the sender's own routing and netfilter hooks — a node's guard, its
// blackhole route — never see them, and any source address can be written in. Pure: the
// frame's bytes, and the shell script that sends them.
import { shellQuote } from '../shell.ts';

export interface CraftedPacket {
  /** The sender's link (its MAC goes into the frame). */
  srcMac: string;
  /** The next hop's MAC: the node the packet is routed through. */
  dstMac: string;
  /** IPv4 source, written as is: the sender's own address, or anybody's. */
  src: string;
  dst: string;
  /** ICMP echo request with this identifier, or a TCP SYN from this source port. */
  proto: 'icmp' | 'tcp';
  /** The echo identifier or TCP source port: tells this packet and its answers apart. */
  tag: number;
  /** TCP destination port. */
  dport?: number;
}

const ETHERTYPE_IPV4 = 0x0800;
const TTL = 64;
/** What an ICMP echo of the checks carries, so a capture tells it from anyone's ping. */
const PAYLOAD = Buffer.from('kube-ipsec check');

function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{2}$/i.test(p))) throw new Error(`not a MAC address: '${mac}'`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: '${ip}'`);
  return Buffer.from(parts);
}

/** The Internet checksum (RFC 1071) of the concatenated parts. */
export function internetChecksum(...parts: Buffer[]): number {
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) sum += (data[i]! << 8) + (data[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function icmpEcho(tag: number): Buffer {
  const m = Buffer.alloc(8 + PAYLOAD.length);
  m[0] = 8; // echo request, code 0
  m.writeUInt16BE(tag, 4);
  m.writeUInt16BE(1, 6); // sequence
  PAYLOAD.copy(m, 8);
  m.writeUInt16BE(internetChecksum(m), 2);
  return m;
}

function tcpSyn(p: CraftedPacket, src: Buffer, dst: Buffer): Buffer {
  if (p.dport === undefined) throw new Error('a TCP SYN needs a destination port');
  const s = Buffer.alloc(20);
  s.writeUInt16BE(p.tag, 0);
  s.writeUInt16BE(p.dport, 2);
  s.writeUInt32BE(p.tag, 4); // sequence number
  s[12] = 5 << 4; // data offset: 5 words, no options
  s[13] = 0x02; // SYN
  s.writeUInt16BE(65535, 14); // window
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, 6]), Buffer.from([0, s.length])]);
  s.writeUInt16BE(internetChecksum(pseudo, s), 16);
  return s;
}

/** The whole frame: Ethernet II, IPv4 (identification = tag, DF clear), ICMP echo or TCP SYN. */
export function craftFrame(p: CraftedPacket): Buffer {
  if (!Number.isInteger(p.tag) || p.tag < 1 || p.tag > 0xffff) throw new Error(`tag ${p.tag} must be 1-65535`);
  const src = ipv4Bytes(p.src);
  const dst = ipv4Bytes(p.dst);
  const l4 = p.proto === 'icmp' ? icmpEcho(p.tag) : tcpSyn(p, src, dst);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; // version 4, header 5 words
  ip.writeUInt16BE(ip.length + l4.length, 2);
  ip.writeUInt16BE(p.tag, 4);
  ip[8] = TTL;
  ip[9] = p.proto === 'icmp' ? 1 : 6;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  const eth = Buffer.alloc(14);
  macBytes(p.dstMac).copy(eth, 0);
  macBytes(p.srcMac).copy(eth, 6);
  eth.writeUInt16BE(ETHERTYPE_IPV4, 12);
  return Buffer.concat([eth, ip, l4]);
}

/**
 * A script (sh -c) that writes each frame to `dev` as it is, one socat per frame: socat
 * sends what one read of its input returns as one frame, so frames must not share an input.
 */
export function sendFramesScript(dev: string, frames: Buffer[]): string {
  const iface = shellQuote(`INTERFACE:${dev}`);
  return frames.map((f) => `printf %s ${f.toString('base64')} | base64 -d | socat -u STDIN ${iface}`).join(' && ');
}
