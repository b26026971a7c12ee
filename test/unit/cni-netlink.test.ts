// rtnetlink messages byte by byte: the layouts the kernel expects (and the integration tests
// then prove against the real kernel).
import { describe, expect, it } from 'vitest';
import {
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  RTM_DELLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  attr,
  delLink,
  errorCode,
  formatIp,
  ipBytes,
  macBytes,
  message,
  newAddr,
  newBridge,
  newRoute,
  newVethPair,
  parseAddr,
  parseAttrs,
  parseLink,
  parseRoute,
  setHairpin,
  setLink,
  splitMessages,
  dumpLinks,
} from '../../src/cni/netlink/wire.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const body = (r: { body: Uint8Array[] }) => Buffer.concat(r.body.map((b) => Buffer.from(b)));
const u16 = (b: Uint8Array, off: number) => Buffer.from(b).readUInt16LE(off);
const u32 = (b: Uint8Array, off: number) => Buffer.from(b).readUInt32LE(off);

describe('attributes', () => {
  it('pads to 4 bytes and records the unpadded length', () => {
    const a = attr(3, new TextEncoder().encode('eth0\0'));
    expect(a.length).toBe(12);
    expect(u16(a, 0)).toBe(9);
    expect(u16(a, 2)).toBe(3);
    expect(hex(a)).toBe('0900030065746830000000' + '00');
  });
  it('round-trips through the parser', () => {
    const buf = Buffer.concat([attr(1, Uint8Array.of(1, 2, 3)), attr(4, Uint8Array.of(9, 9, 9, 9))]);
    const m = parseAttrs(buf);
    expect([...m.keys()]).toEqual([1, 4]);
    expect([...m.get(1)!]).toEqual([1, 2, 3]);
  });
});

describe('addresses', () => {
  it('encodes and formats IPv4 and IPv6', () => {
    expect(ipBytes('10.240.1.2')).toEqual({ family: 2, bytes: Uint8Array.of(10, 240, 1, 2) });
    expect(formatIp(ipBytes('fd00::1:2').bytes)).toBe('fd00::1:2');
    expect(formatIp(ipBytes('2001:db8:0:0:1:0:0:1').bytes)).toBe('2001:db8::1:0:0:1');
    expect(formatIp(ipBytes('::').bytes)).toBe('::');
    expect(() => ipBytes('10.0.0.256')).toThrow();
    expect(() => ipBytes('1::2::3')).toThrow();
    expect(hex(macBytes('02:AB:00:00:00:ff'))).toBe('02ab000000ff');
    expect(() => macBytes('02:ab')).toThrow();
  });
});

describe('requests', () => {
  it('wraps a request in a netlink header with REQUEST set', () => {
    const m = message(RTM_NEWLINK, NLM_F_ACK, 7, Uint8Array.of(1, 2, 3, 4));
    expect(u32(m, 0)).toBe(20);
    expect(u16(m, 4)).toBe(RTM_NEWLINK);
    expect(u16(m, 6)).toBe(NLM_F_ACK | NLM_F_REQUEST);
    expect(u32(m, 8)).toBe(7);
  });
  it('creates a veth pair up, with its peer named, addressed and placed in the pod netns', () => {
    const r = newVethPair({ host: 'vethabc', hostMac: '02:00:00:00:00:01', master: 4, peer: 'eth0', peerMac: '02:00:00:00:00:02', mtu: 1400, peerNetnsFd: 9 });
    expect(r.type).toBe(RTM_NEWLINK);
    expect(r.flags).toBe(NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    const b = body(r);
    expect(u32(b, 8) & 1).toBe(1); // ifi_flags IFF_UP
    const attrs = parseAttrs(b.subarray(16));
    expect(Buffer.from(attrs.get(3)!).toString()).toBe('vethabc\0');
    expect(hex(attrs.get(1)!)).toBe('020000000001');
    expect(u32(attrs.get(4)!, 0)).toBe(1400);
    expect(u32(attrs.get(10)!, 0)).toBe(4); // IFLA_MASTER: attached from birth
    const info = parseAttrs(attrs.get(18)!);
    expect(Buffer.from(info.get(1)!).toString()).toBe('veth');
    const peer = parseAttrs(info.get(2)!).get(1)!; // VETH_INFO_PEER = ifinfomsg + attributes
    const peerAttrs = parseAttrs(peer.subarray(16));
    expect(Buffer.from(peerAttrs.get(3)!).toString()).toBe('eth0\0');
    expect(hex(peerAttrs.get(1)!)).toBe('020000000002');
    expect(u32(peerAttrs.get(28)!, 0)).toBe(9); // IFLA_NET_NS_FD
  });
  it('creates a bridge with a fixed MAC', () => {
    const attrs = parseAttrs(body(newBridge('ipsec-br01', '02:00:00:00:00:03')).subarray(16));
    expect(Buffer.from(parseAttrs(attrs.get(18)!).get(1)!).toString()).toBe('bridge');
    expect(hex(attrs.get(1)!)).toBe('020000000003');
  });
  it('sets master, alias and up on an existing link by index', () => {
    const b = body(setLink(5, { up: true, master: 2, alias: 'ipsec-cni:a/eth0' }));
    expect(Buffer.from(b).readInt32LE(4)).toBe(5);
    expect(u32(b, 8)).toBe(1);
    expect(u32(b, 12)).toBe(1);
    const attrs = parseAttrs(b.subarray(16));
    expect(u32(attrs.get(10)!, 0)).toBe(2);
    expect(Buffer.from(attrs.get(20)!).toString()).toBe('ipsec-cni:a/eth0');
    expect(u32(body(setLink(5, { master: 2 })), 12)).toBe(0); // not touching the up flag
  });
  it('turns hairpin on through the bridge port slave data', () => {
    const info = parseAttrs(parseAttrs(body(setHairpin(4, true)).subarray(16)).get(18)!);
    expect(Buffer.from(info.get(4)!).toString()).toBe('bridge');
    expect([...parseAttrs(info.get(5)!).get(4)!]).toEqual([1]);
  });
  it('adds (exclusive) or replaces an address', () => {
    const add = newAddr(3, '10.240.1.2/24', false);
    expect(add.type).toBe(RTM_NEWADDR);
    expect(add.flags & NLM_F_EXCL).toBeTruthy();
    expect(newAddr(3, '10.240.1.1/24', true).flags & NLM_F_REPLACE).toBeTruthy();
    const b = body(add);
    expect([b[0], b[1]]).toEqual([2, 24]);
    expect(u32(b, 4)).toBe(3);
    expect(parseAddr(b)).toEqual({ index: 3, address: '10.240.1.2', prefix: 24 });
  });
  it('adds a default route via the gateway on the pod interface', () => {
    const r = newRoute('0.0.0.0/0', '10.240.1.1', 2);
    expect(r.type).toBe(RTM_NEWROUTE);
    const b = body(r);
    expect([...b.subarray(0, 8)]).toEqual([2, 0, 0, 0, 254, 3, 0, 1]); // inet, /0, main table, boot, universe, unicast
    expect(parseRoute(b)).toEqual({ dst: 'default', gateway: '10.240.1.1', oif: 2, table: 254 });
    expect(parseRoute(body(newRoute('192.0.2.128/25', '10.240.1.254', 2))).dst).toBe('192.0.2.128/25');
  });
  it('deletes a link by name and dumps links', () => {
    const d = delLink('eth0');
    expect(d.type).toBe(RTM_DELLINK);
    expect(Buffer.from(parseAttrs(body(d).subarray(16)).get(3)!).toString()).toBe('eth0\0');
    expect(dumpLinks().flags).toBe(NLM_F_DUMP);
  });
});

describe('answers', () => {
  it('splits a datagram and reads errors and links', () => {
    const link = message(RTM_NEWLINK, 0, 5, ...(body(setLink(7, { up: true, alias: 'x' })).length ? [body(setLink(7, { up: true, alias: 'x' }))] : []));
    const err = new Uint8Array(20);
    Buffer.from(err.buffer).writeInt32LE(-17, 0);
    const datagram = Buffer.concat([link, message(2, 0, 5, err)]);
    const msgs = splitMessages(datagram);
    expect(msgs.map((m) => [m.type, m.seq])).toEqual([
      [RTM_NEWLINK, 5],
      [2, 5],
    ]);
    expect(errorCode(msgs[1]!.payload)).toBe(17);
    expect(parseLink(msgs[0]!.payload)).toMatchObject({ index: 7, up: true, alias: 'x' });
  });
});
