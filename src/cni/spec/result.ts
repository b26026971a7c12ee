// The CNI Result in every version this plugin speaks. Internally everything is the 1.1.0
// shape; `parseResult` reads any supported version (a delegated IPAM plugin's output, a
// prevResult) and `formatResult` writes the version the runtime asked for.
import { CniError, ErrorCode } from './errors.ts';
import { compareVersions } from './versions.ts';

export interface Interface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

interface IpConfig {
  /** CIDR: address with the subnet's prefix length. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  /** 1.1.0 */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

const ROUTE_FIELDS_1_1 = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;
const IFACE_FIELDS_1_1 = ['mtu', 'socketPath', 'pciID'] as const;

function fail(where: string, why: string): never {
  throw new CniError(ErrorCode.DecodingFailure, `${where}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') fail(where, `'${key}' must be a string`);
  return v;
}

function optNumber(o: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(where, `'${key}' must be an integer`);
  return v;
}

function optStringArray(o: Record<string, unknown>, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(where, `'${key}' must be a list of strings`);
  return v as string[];
}

function assign<T extends object>(target: T, values: Partial<T>): T {
  for (const [k, v] of Object.entries(values)) if (v !== undefined) (target as Record<string, unknown>)[k] = v;
  return target;
}

/**
 * Reads a Result of any supported version (0.3.0 … 1.1.0). The per-IP `version` field of
 * 0.3.x/0.4.0 is dropped: the address says which family it is.
 */
export function parseResult(raw: unknown, where: string): Result {
  if (!isObject(raw)) fail(where, 'must be a JSON object');
  if ('ip4' in raw || 'ip6' in raw) fail(where, 'is a CNI 0.2.0 result (ip4/ip6), which this plugin does not read');
  const result: Result = {};
  if (raw.interfaces !== undefined) {
    if (!Array.isArray(raw.interfaces)) fail(where, "'interfaces' must be a list");
    result.interfaces = raw.interfaces.map((i, n) => {
      const w = `${where}.interfaces[${n}]`;
      if (!isObject(i)) fail(w, 'must be an object');
      const name = optString(i, 'name', w);
      if (!name) fail(w, "'name' is required");
      return assign<Interface>(
        { name },
        {
          mac: optString(i, 'mac', w),
          mtu: optNumber(i, 'mtu', w),
          sandbox: optString(i, 'sandbox', w),
          socketPath: optString(i, 'socketPath', w),
          pciID: optString(i, 'pciID', w),
        },
      );
    });
  }
  if (raw.ips !== undefined) {
    if (!Array.isArray(raw.ips)) fail(where, "'ips' must be a list");
    result.ips = raw.ips.map((ip, n) => {
      const w = `${where}.ips[${n}]`;
      if (!isObject(ip)) fail(w, 'must be an object');
      const address = optString(ip, 'address', w);
      if (!address?.includes('/')) fail(w, "'address' must be an address in CIDR notation");
      const index = optNumber(ip, 'interface', w);
      if (index !== undefined && (index < 0 || (result.interfaces && index >= result.interfaces.length))) {
        fail(w, `'interface' ${index} does not name an entry of 'interfaces'`);
      }
      return assign<IpConfig>({ address }, { gateway: optString(ip, 'gateway', w), interface: index });
    });
  }
  if (raw.routes !== undefined && raw.routes !== null) {
    if (!Array.isArray(raw.routes)) fail(where, "'routes' must be a list");
    result.routes = raw.routes.map((r, n) => {
      const w = `${where}.routes[${n}]`;
      if (!isObject(r)) fail(w, 'must be an object');
      const dst = optString(r, 'dst', w);
      if (!dst) fail(w, "'dst' is required");
      const route: Route = { dst };
      assign(route, { gw: optString(r, 'gw', w) });
      for (const f of ROUTE_FIELDS_1_1) assign(route, { [f]: optNumber(r, f, w) });
      return route;
    });
  }
  if (isObject(raw.dns)) {
    const w = `${where}.dns`;
    const dns = assign<Dns>(
      {},
      {
        nameservers: optStringArray(raw.dns, 'nameservers', w),
        domain: optString(raw.dns, 'domain', w),
        search: optStringArray(raw.dns, 'search', w),
        options: optStringArray(raw.dns, 'options', w),
      },
    );
    if (Object.keys(dns).length) result.dns = dns;
  }
  return result;
}

/** Writes `result` in the shape of spec `version` (which the caller has checked is supported). */
export function formatResult(result: Result, version: string): Record<string, unknown> {
  const pre1 = compareVersions(version, '1.0.0') < 0;
  const pre11 = compareVersions(version, '1.1.0') < 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { ...i };
      if (pre11) for (const f of IFACE_FIELDS_1_1) delete o[f];
      return o;
    });
  }
  out.ips = (result.ips ?? []).map((ip) =>
    // 0.3.x/0.4.0 require the per-address family ("4"/"6"); 1.0.0 removed it.
    pre1 ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : { ...ip },
  );
  if (result.routes?.length) {
    out.routes = result.routes.map((r) => {
      const o: Record<string, unknown> = { ...r };
      if (pre11) for (const f of ROUTE_FIELDS_1_1) delete o[f];
      return o;
    });
  }
  out.dns = result.dns ?? {};
  return out;
}
