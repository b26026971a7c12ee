// IPv4 arithmetic on 32-bit unsigned integers: enough for the built-in IPAM pool and
// config validation, without pulling a dependency into the plugin binary.

export interface Cidr {
  /** Network address (host bits zero). */
  network: number;
  prefix: number;
}

export function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const b = Number(p);
    if (b > 255) return undefined;
    n = n * 256 + b;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export type CidrParse = { ok: true; cidr: Cidr; ip: number } | { ok: false; reason: string };

/** "10.240.1.0/24" → network + prefix; `ip` is the address as written (host bits kept). */
export function parseCidr(s: string): CidrParse {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return { ok: false, reason: 'not in a.b.c.d/len notation' };
  const ip = parseIpv4(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined) return { ok: false, reason: `'${m[1]}' is not an IPv4 address` };
  if (prefix > 32) return { ok: false, reason: `prefix length ${prefix} is larger than 32` };
  return { ok: true, cidr: { network: (ip & mask(prefix)) >>> 0, prefix }, ip };
}

export function broadcast(c: Cidr): number {
  return (c.network | ~mask(c.prefix)) >>> 0;
}

export function contains(c: Cidr, ip: number): boolean {
  return (ip & mask(c.prefix)) >>> 0 === c.network;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}
