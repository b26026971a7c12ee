// rtnetlink wire format: building requests and reading answers. Pure (bytes in, bytes
// out), so every message layout is unit-tested; netlink/socket.ts moves the bytes.
// Layouts from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h> (host byte order).

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;

const AF_UNSPEC = 0;
export const AF_INET = 2;
const AF_INET6 = 10;
const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4; // hairpin
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_TABLE = 15;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

const enc = new TextEncoder();
const dec = new TextDecoder();

const align4 = (n: number) => (n + 3) & ~3;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One rtattr: 4-byte header, payload, padding to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Uint8Array {
  const len = 4 + payload.length;
  const out = new Uint8Array(align4(len));
  const v = new DataView(out.buffer);
  v.setUint16(0, len, true);
  v.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

const nested = (type: number, ...children: Uint8Array[]) => attr(type, concat(children));
const str = (type: number, s: string) => attr(type, enc.encode(s + '\0'));
/** Without the trailing NUL (as iproute2 sends kinds and aliases). */
const bytes = (type: number, s: string) => attr(type, enc.encode(s));
function u32(type: number, n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return attr(type, b);
}
const u8 = (type: number, n: number) => attr(type, Uint8Array.of(n));

export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`bad MAC ${mac}`);
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** IPv4 or IPv6 text → family and bytes. */
export function ipBytes(ip: string): { family: number; bytes: Uint8Array } {
  if (!ip.includes(':')) {
    const p = ip.split('.').map(Number);
    if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 address ${ip}`);
    return { family: AF_INET, bytes: Uint8Array.from(p) };
  }
  const halves = ip.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${ip}`);
  const [head, tail] = halves as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  if (all.length !== 8 || all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) throw new Error(`bad IPv6 address ${ip}`);
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 255;
  });
  return { family: AF_INET6, bytes: out };
}

export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
  // longest run of zero groups becomes "::"
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at < 0) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.len).join(':')}`;
}

/** "10.1.2.3/24" or "default"/"0.0.0.0/0" → parts. */
function parsePrefix(cidr: string): { ip: string; prefix: number } {
  if (cidr === 'default') return { ip: '0.0.0.0', prefix: 0 };
  const [ip, len] = cidr.split('/');
  const prefix = len === undefined ? (ip!.includes(':') ? 128 : 32) : Number(len);
  return { ip: ip!, prefix };
}

function ifinfomsg(index: number, flags: number, change: number, family = AF_UNSPEC): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint8(0, family);
  v.setInt32(4, index, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return b;
}

/** A complete netlink message. */
export function message(type: number, flags: number, seq: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concat(parts);
  const out = new Uint8Array(16 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, out.length, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags | NLM_F_REQUEST, true);
  v.setUint32(8, seq, true);
  out.set(body, 16);
  return out;
}

export interface Request {
  type: number;
  flags: number;
  body: Uint8Array[];
}

const CREATE = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;

/**
 * `ip link add HOST address M mtu X master BR up type veth peer name IF address M2 mtu X
 * netns FD`: attached and up from birth, the peer born inside the pod's namespace.
 */
export function newVethPair(o: { host: string; hostMac: string; master: number; peer: string; peerMac: string; mtu: number; peerNetnsFd: number }): Request {
  const peer = concat([
    ifinfomsg(0, 0, 0),
    str(IFLA_IFNAME, o.peer),
    attr(IFLA_ADDRESS, macBytes(o.peerMac)),
    u32(IFLA_MTU, o.mtu),
    u32(IFLA_NET_NS_FD, o.peerNetnsFd),
  ]);
  return {
    type: RTM_NEWLINK,
    flags: CREATE,
    body: [
      ifinfomsg(0, IFF_UP, IFF_UP),
      str(IFLA_IFNAME, o.host),
      attr(IFLA_ADDRESS, macBytes(o.hostMac)),
      u32(IFLA_MTU, o.mtu),
      u32(IFLA_MASTER, o.master),
      nested(IFLA_LINKINFO, bytes(IFLA_INFO_KIND, 'veth'), nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))),
    ],
  };
}

/** `ip link add NAME address MAC up type bridge` */
export function newBridge(name: string, mac: string): Request {
  return {
    type: RTM_NEWLINK,
    flags: CREATE,
    body: [ifinfomsg(0, IFF_UP, IFF_UP), str(IFLA_IFNAME, name), attr(IFLA_ADDRESS, macBytes(mac)), nested(IFLA_LINKINFO, bytes(IFLA_INFO_KIND, 'bridge'))],
  };
}

/** `ip link set` on an existing link: up, master, alias (any subset). */
export function setLink(index: number, o: { up?: boolean; master?: number; alias?: string }): Request {
  const body = [ifinfomsg(index, o.up ? IFF_UP : 0, o.up ? IFF_UP : 0)];
  if (o.master !== undefined) body.push(u32(IFLA_MASTER, o.master));
  if (o.alias !== undefined) body.push(bytes(IFLA_IFALIAS, o.alias));
  return { type: RTM_NEWLINK, flags: NLM_F_ACK, body };
}

/** `ip link set DEV type bridge_slave hairpin on` (the link must already be a bridge port). */
export function setHairpin(index: number, on: boolean): Request {
  return {
    type: RTM_NEWLINK,
    flags: NLM_F_ACK,
    body: [
      ifinfomsg(index, 0, 0),
      nested(IFLA_LINKINFO, bytes(IFLA_INFO_SLAVE_KIND, 'bridge'), nested(IFLA_INFO_SLAVE_DATA, u8(IFLA_BRPORT_MODE, on ? 1 : 0))),
    ],
  };
}

/** `ip link del NAME` */
export function delLink(name: string): Request {
  return { type: RTM_DELLINK, flags: NLM_F_ACK, body: [ifinfomsg(0, 0, 0), str(IFLA_IFNAME, name)] };
}

/** `ip link show NAME` (one answer) */
export function getLink(name: string): Request {
  return { type: RTM_GETLINK, flags: 0, body: [ifinfomsg(0, 0, 0), str(IFLA_IFNAME, name)] };
}

export function dumpLinks(): Request {
  return { type: RTM_GETLINK, flags: NLM_F_DUMP, body: [ifinfomsg(0, 0, 0)] };
}

/** `ip addr add|replace CIDR dev INDEX` */
export function newAddr(index: number, cidr: string, replace: boolean): Request {
  const { ip, prefix } = parsePrefix(cidr);
  const { family, bytes: a } = ipBytes(ip);
  const head = new Uint8Array(8);
  const v = new DataView(head.buffer);
  v.setUint8(0, family);
  v.setUint8(1, prefix);
  v.setUint8(3, RT_SCOPE_UNIVERSE);
  v.setUint32(4, index, true);
  return {
    type: RTM_NEWADDR,
    flags: NLM_F_CREATE | NLM_F_ACK | (replace ? NLM_F_REPLACE : NLM_F_EXCL),
    body: [head, attr(IFA_LOCAL, a), attr(IFA_ADDRESS, a)],
  };
}

export function dumpAddrs(family = AF_UNSPEC): Request {
  const head = new Uint8Array(8);
  head[0] = family;
  return { type: RTM_GETADDR, flags: NLM_F_DUMP, body: [head] };
}

function rtmsg(family: number, dstLen: number): Uint8Array {
  const b = Uint8Array.of(family, dstLen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0, 0, 0, 0);
  return b;
}

/** `ip route add DST via GW dev INDEX` */
export function newRoute(dst: string, gw: string, oif: number): Request {
  const d = parsePrefix(dst === 'default' ? '0.0.0.0/0' : dst);
  const g = ipBytes(gw);
  const body = [rtmsg(g.family, d.prefix)];
  if (d.prefix > 0) body.push(attr(RTA_DST, ipBytes(d.ip).bytes));
  body.push(attr(RTA_GATEWAY, g.bytes), u32(RTA_OIF, oif));
  return { type: RTM_NEWROUTE, flags: CREATE, body };
}

export function dumpRoutes(family: number): Request {
  return { type: RTM_GETROUTE, flags: NLM_F_DUMP, body: [rtmsg(family, 0)] };
}

// ---- reading answers ----

export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  payload: Uint8Array;
}

/** Splits a datagram into messages. */
export function splitMessages(buf: Uint8Array): RawMessage[] {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: RawMessage[] = [];
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = v.getUint32(off, true);
    if (len < 16 || off + len > buf.length) break;
    out.push({
      type: v.getUint16(off + 4, true),
      flags: v.getUint16(off + 6, true),
      seq: v.getUint32(off + 8, true),
      payload: buf.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** NLMSG_ERROR payload: 0 = ACK, else a positive errno. */
export function errorCode(payload: Uint8Array): number {
  return -new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0, true);
}

export function parseAttrs(buf: Uint8Array): Map<number, Uint8Array> {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = new Map<number, Uint8Array>();
  for (let off = 0; off + 4 <= buf.length; ) {
    const len = v.getUint16(off, true);
    if (len < 4 || off + len > buf.length) break;
    out.set(v.getUint16(off + 2, true) & 0x3fff, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

const cstr = (b: Uint8Array | undefined) => (b ? dec.decode(b).replace(/\0.*$/s, '') : undefined);
const readU32 = (b: Uint8Array | undefined) => (b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : undefined);

export interface Link {
  index: number;
  name: string;
  up: boolean;
  mac?: string;
  mtu?: number;
  master?: number;
  alias?: string;
  kind?: string;
}

export function parseLink(payload: Uint8Array): Link {
  const v = new DataView(payload.buffer, payload.byteOffset, 16);
  const attrs = parseAttrs(payload.subarray(16));
  const info = attrs.get(IFLA_LINKINFO);
  const link: Link = { index: v.getInt32(4, true), name: cstr(attrs.get(IFLA_IFNAME)) ?? '', up: (v.getUint32(8, true) & IFF_UP) !== 0 };
  const mac = attrs.get(IFLA_ADDRESS);
  if (mac?.length === 6) link.mac = formatMac(mac);
  const mtu = readU32(attrs.get(IFLA_MTU));
  if (mtu !== undefined) link.mtu = mtu;
  const master = readU32(attrs.get(IFLA_MASTER));
  if (master !== undefined) link.master = master;
  const alias = cstr(attrs.get(IFLA_IFALIAS));
  if (alias) link.alias = alias;
  const kind = info ? cstr(parseAttrs(info).get(IFLA_INFO_KIND)) : undefined;
  if (kind) link.kind = kind;
  return link;
}

export interface Addr {
  index: number;
  address: string;
  prefix: number;
}

export function parseAddr(payload: Uint8Array): Addr {
  const v = new DataView(payload.buffer, payload.byteOffset, 8);
  const attrs = parseAttrs(payload.subarray(8));
  const a = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  return { index: v.getUint32(4, true), address: a ? formatIp(a) : '', prefix: v.getUint8(1) };
}

export interface RouteEntry {
  /** "default" or "a.b.c.d/len" */
  dst: string;
  gateway?: string;
  oif?: number;
  table: number;
}

export function parseRoute(payload: Uint8Array): RouteEntry {
  const dstLen = payload[1]!;
  const attrs = parseAttrs(payload.subarray(12));
  const dst = attrs.get(RTA_DST);
  const gw = attrs.get(RTA_GATEWAY);
  const route: RouteEntry = {
    dst: dstLen === 0 ? 'default' : `${dst ? formatIp(dst) : '?'}/${dstLen}`,
    table: readU32(attrs.get(RTA_TABLE)) ?? payload[4]!,
  };
  if (gw) route.gateway = formatIp(gw);
  const oif = readU32(attrs.get(RTA_OIF));
  if (oif !== undefined) route.oif = oif;
  return route;
}
