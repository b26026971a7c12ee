// IPv4 addresses and CIDR blocks as 32-bit unsigned integers. Everything the planner
// derives (subnets, gateways, the service VIP, overlaps) is integer arithmetic on these,
// which keeps it exact and fast enough for hundreds of nodes.

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  readonly base: number;
  readonly prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Parses dotted-quad notation; undefined if it is not exactly an IPv4 address. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; reason: string };

/** Parses `a.b.c.d/n`; host bits must be zero (10.240.1.0/24, not 10.240.1.5/24). */
export function parseCidr(text: string): CidrParse {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  const ip = m ? parseIpv4(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return { ok: false, reason: 'is not an IPv4 CIDR (a.b.c.d/n with n ≤ 32)' };
  const base = (ip & maskOf(prefix)) >>> 0;
  if (base !== ip) return { ok: false, reason: `has host bits set; the network is ${formatIpv4(base)}/${prefix}` };
  return { ok: true, cidr: { base, prefix } };
}

/** Like parseCidr for values already validated by the schema. */
export function cidr(text: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(`${text} ${r.reason}`);
  return r.cidr;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function lastAddress(c: Cidr): number {
  return c.base + size(c) - 1;
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip <= lastAddress(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

/** The `index`-th subnet of length `prefix` inside `parent` (0-based). */
export function nthSubnet(parent: Cidr, prefix: number, index: number): Cidr {
  return { base: parent.base + index * 2 ** (32 - prefix), prefix };
}

/** How many subnets of length `prefix` fit in `parent`. */
export function subnetCount(parent: Cidr, prefix: number): number {
  return prefix < parent.prefix ? 0 : 2 ** (prefix - parent.prefix);
}

/** Offset of `ip` inside `c`: 1 is the first usable address of a /24. */
export function addressAt(c: Cidr, offset: number): number {
  return c.base + offset;
}
