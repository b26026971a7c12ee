// The store file's format: what a valid <network>.json looks like. Pure, unit-tested; a file
// that does not pass is reported (naming the file), never silently reset.
import { CniError, ErrorCode } from '../spec/errors.ts';
import { parseIpv4 } from '../ipv4.ts';
import type { Allocation, StoreData } from './allocator.ts';

function corrupt(path: string, why: string): never {
  throw new CniError(
    ErrorCode.StoreCorrupt,
    `IPAM store ${path} is corrupt: ${why}`,
    'refusing to reset it (that could hand out addresses still in use); repair or remove the file, then run GC',
  );
}

/** Validates a store file's text. Pure; `path` only names the file in the error. */
export function parseStore(text: string, path: string, network: string): StoreData {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    corrupt(path, `not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) corrupt(path, 'not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.version !== 1) corrupt(path, `unknown store version ${JSON.stringify(o.version)}`);
  if (o.network !== network) corrupt(path, `it belongs to network ${JSON.stringify(o.network)}, not '${network}'`);
  if (o.lastAllocated !== undefined && (typeof o.lastAllocated !== 'string' || parseIpv4(o.lastAllocated) === undefined)) {
    corrupt(path, `'lastAllocated' ${JSON.stringify(o.lastAllocated)} is not an IPv4 address`);
  }
  const allocations = o.allocations;
  if (typeof allocations !== 'object' || allocations === null || Array.isArray(allocations)) {
    corrupt(path, "'allocations' is not an object");
  }
  for (const [ip, a] of Object.entries(allocations as Record<string, unknown>)) {
    if (parseIpv4(ip) === undefined) corrupt(path, `allocation key '${ip}' is not an IPv4 address`);
    const entry = a as Partial<Allocation> | null;
    if (!entry || typeof entry.containerId !== 'string' || typeof entry.ifname !== 'string') {
      corrupt(path, `allocation ${ip} lacks containerId/ifname`);
    }
  }
  return raw as StoreData;
}
