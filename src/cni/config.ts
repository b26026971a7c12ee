// Turns the stdin network configuration into a validated, defaulted PluginConfig.
// Pure: every rule here is unit-tested; the error code tells the runtime which class of
// mistake it is (6: not JSON, 1: version, 7: a field), the message names the field.
import { DEFAULT_BRIDGE, DEFAULT_DATA_DIR, DEFAULT_LOG_FILE } from './netconf.ts';
import { broadcast, formatCidr, formatIpv4, parseCidr, parseIpv4, type Cidr } from './ipv4.ts';
import { isValidIfname } from './names.ts';
import { CniError, ErrorCode } from './spec/errors.ts';
import { parseResult, type Result } from './spec/result.ts';
import { SUPPORTED_VERSIONS, isSupportedVersion } from './spec/versions.ts';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface BuiltinIpamConfig {
  kind: 'builtin';
  subnet: Cidr;
  gateway: number;
  dataDir: string;
  lockTimeoutMs: number;
}

export interface DelegateIpamConfig {
  kind: 'delegate';
  /** Executable name looked up in CNI_PATH. */
  type: string;
}

export interface PluginConfig {
  cniVersion: string;
  name: string;
  bridge: string;
  mtu: number;
  hairpinMode: boolean;
  isDefaultGateway: boolean;
  logFile: string;
  ipam: BuiltinIpamConfig | DelegateIpamConfig;
  prevResult?: Result;
  /** GC only: `cni.dev/valid-attachments`. */
  validAttachments?: Attachment[];
  /** The configuration exactly as received: what a delegated IPAM plugin gets on stdin. */
  raw: Record<string, unknown>;
}

/** Spec: network names are alphanumeric plus '_', '.', '-' (they also name our store file). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(msg: string): never {
  throw new CniError(ErrorCode.InvalidConfig, msg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function opt<T>(o: Record<string, unknown>, key: string, type: 'string' | 'boolean' | 'number', fallback: T): T {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== type) invalid(`'${key}' must be a ${type}, got ${JSON.stringify(v)}`);
  return v as T;
}

function absolutePath(o: Record<string, unknown>, key: string, fallback: string): string {
  const p = opt(o, key, 'string', fallback);
  if (!p.startsWith('/') || p.includes('\0')) invalid(`'${key}' must be an absolute path, got '${p}'`);
  return p;
}

/** Parses stdin. Throws CniError 6 (not JSON), 1 (unsupported cniVersion) or 7 (bad field). */
export function decodeConfig(stdin: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `network configuration on stdin is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(ErrorCode.DecodingFailure, 'network configuration on stdin must be a JSON object');
  return raw;
}

/** The version to answer in, before anything else is validated (so errors carry it too). */
export function configVersion(raw: Record<string, unknown>): string {
  const v = raw.cniVersion;
  if (typeof v !== 'string' || v === '') {
    throw new CniError(ErrorCode.IncompatibleVersion, `'cniVersion' is missing; this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (!isSupportedVersion(v)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `incompatible CNI version '${v}'`, `this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v;
}

function builtinIpam(raw: Record<string, unknown>): BuiltinIpamConfig {
  const subnetText = raw.subnet;
  if (subnetText === undefined) invalid("'subnet' is required when 'ipam' is absent (built-in IPAM)");
  if (typeof subnetText !== 'string') invalid(`'subnet' must be a string, got ${JSON.stringify(subnetText)}`);
  const parsed = parseCidr(subnetText);
  if (!parsed.ok) invalid(`'subnet' '${subnetText}' is not an IPv4 CIDR: ${parsed.reason}`);
  const subnet = parsed.cidr;
  if (parsed.ip !== subnet.network) {
    invalid(`'subnet' '${subnetText}' has host bits set; did you mean '${formatCidr(subnet)}'?`);
  }
  if (subnet.prefix > 30 || subnet.prefix < 8) {
    invalid(`'subnet' '${subnetText}' must have a prefix length between /8 and /30 (gateway plus at least one pod)`);
  }
  let gateway = subnet.network + 1;
  if (raw.gateway !== undefined) {
    const g = typeof raw.gateway === 'string' ? parseIpv4(raw.gateway) : undefined;
    if (g === undefined) invalid(`'gateway' must be an IPv4 address, got ${JSON.stringify(raw.gateway)}`);
    if (g <= subnet.network || g >= broadcast(subnet)) {
      invalid(`'gateway' ${formatIpv4(g)} is not a usable address of subnet ${formatCidr(subnet)}`);
    }
    gateway = g;
  }
  const lockTimeoutMs = opt(raw, 'lockTimeoutMs', 'number', 10_000);
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 0) invalid(`'lockTimeoutMs' must be a non-negative integer, got ${lockTimeoutMs}`);
  return { kind: 'builtin', subnet, gateway, dataDir: absolutePath(raw, 'dataDir', DEFAULT_DATA_DIR), lockTimeoutMs };
}

function delegateIpam(raw: Record<string, unknown>, ipam: unknown): DelegateIpamConfig {
  if (!isObject(ipam)) invalid(`'ipam' must be an object, got ${JSON.stringify(ipam)}`);
  if (typeof ipam.type !== 'string' || !NAME.test(ipam.type)) {
    invalid(`'ipam.type' must name an IPAM plugin executable (letters, digits, '_', '.', '-'), got ${JSON.stringify(ipam.type)}`);
  }
  // Two address sources would be ambiguous; the renderer writes one or the other.
  for (const k of ['subnet', 'gateway'] as const) {
    if (raw[k] !== undefined) invalid(`'${k}' belongs to the built-in IPAM and cannot be combined with 'ipam' (type '${ipam.type}')`);
  }
  return { kind: 'delegate', type: ipam.type };
}

function attachments(raw: Record<string, unknown>): Attachment[] | undefined {
  // libcni sets both keys (the spec first misnamed the field, containernetworking/cni#1101).
  const list = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) invalid("'cni.dev/valid-attachments' must be a list");
  return list.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      invalid(`'cni.dev/valid-attachments'[${i}] must be {"containerID": string, "ifname": string}`);
    }
    return { containerId: a.containerID, ifname: a.ifname };
  });
}

export function validateConfig(raw: Record<string, unknown>): PluginConfig {
  const cniVersion = configVersion(raw);
  if (typeof raw.name !== 'string' || !NAME.test(raw.name)) {
    invalid(`'name' must be a network name (letters, digits, '_', '.', '-'), got ${JSON.stringify(raw.name)}`);
  }
  if (raw.type !== undefined && typeof raw.type !== 'string') invalid(`'type' must be a string`);
  const bridge = opt(raw, 'bridge', 'string', DEFAULT_BRIDGE);
  if (!isValidIfname(bridge)) invalid(`'bridge' '${bridge}' is not a valid interface name (1-15 characters, no '/', ':' or whitespace)`);
  const mtu = opt(raw, 'mtu', 'number', 1500);
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) invalid(`'mtu' must be an integer between 68 and 65535, got ${mtu}`);
  const config: PluginConfig = {
    cniVersion,
    name: raw.name,
    bridge,
    mtu,
    hairpinMode: opt(raw, 'hairpinMode', 'boolean', false),
    isDefaultGateway: opt(raw, 'isDefaultGateway', 'boolean', true),
    logFile: absolutePath(raw, 'logFile', DEFAULT_LOG_FILE),
    ipam: raw.ipam === undefined || raw.ipam === null ? builtinIpam(raw) : delegateIpam(raw, raw.ipam),
    raw,
  };
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    config.prevResult = parseResult(raw.prevResult, 'prevResult');
  }
  const valid = attachments(raw);
  if (valid) config.validAttachments = valid;
  return config;
}

/** Best effort, for logging a call whose configuration did not validate. */
export function logFileOf(stdin: string): string | undefined {
  try {
    const raw = JSON.parse(stdin) as unknown;
    const f = isObject(raw) ? raw.logFile : undefined;
    return typeof f === 'string' && f.startsWith('/') ? f : undefined;
  } catch {
    return undefined;
  }
}
