// The built-in IPAM's allocation dictionary and the pure operations on it. The file store
// (store.ts) runs each of these inside one locked read-modify-write; nothing here touches
// the disk, so every rule (rotation, reserved addresses, idempotent ADD) is unit-tested.
import { broadcast, contains, formatIpv4, parseIpv4, type Cidr } from '../ipv4.ts';
import type { Attachment } from '../config.ts';

export interface Allocation {
  containerId: string;
  ifname: string;
  /** Netns path at ADD time (informational: DEL works without it). */
  netns?: string;
  /** From CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME. */
  podNamespace?: string;
  podName?: string;
  /** Host-side veth name, so GC can remove it with the reservation. */
  hostVeth?: string;
  allocatedAt?: string;
}

export interface StoreData {
  version: 1;
  network: string;
  /** Rotation cursor: the next search starts after it, so a just-freed IP is handed out last. */
  lastAllocated?: string;
  /** IPv4 address → who holds it. */
  allocations: Record<string, Allocation>;
}

export interface Pool {
  subnet: Cidr;
  gateway: number;
}

export function emptyStore(network: string): StoreData {
  return { version: 1, network, allocations: {} };
}

/** Usable host addresses: network, broadcast and the gateway are never handed out. */
function bounds(pool: Pool): { first: number; last: number } {
  return { first: pool.subnet.network + 1, last: broadcast(pool.subnet) - 1 };
}

function isReserved(pool: Pool, ip: number): boolean {
  const { first, last } = bounds(pool);
  return ip < first || ip > last || ip === pool.gateway;
}

export function findByAttachment(store: StoreData, containerId: string, ifname: string): string | undefined {
  for (const [ip, a] of Object.entries(store.allocations)) {
    if (a.containerId === containerId && a.ifname === ifname) return ip;
  }
  return undefined;
}

export interface AllocateOutcome {
  store: StoreData;
  ip: number;
  /** False when (containerId, ifname) already held `ip`: a repeated ADD takes no second IP. */
  created: boolean;
}

/**
 * Next free address after the cursor, wrapping once around the pool. Returns undefined when
 * the pool is exhausted (the caller turns that into a clear error).
 */
export function allocate(store: StoreData, pool: Pool, owner: Allocation): AllocateOutcome | undefined {
  const existing = findByAttachment(store, owner.containerId, owner.ifname);
  if (existing !== undefined) return { store, ip: parseIpv4(existing)!, created: false };
  const { first, last } = bounds(pool);
  const cursor = store.lastAllocated === undefined ? undefined : parseIpv4(store.lastAllocated);
  const start = cursor !== undefined && cursor >= first && cursor <= last ? cursor + 1 : first;
  const size = last - first + 1;
  for (let i = 0; i < size; i++) {
    const ip = first + ((start - first + i) % size);
    const key = formatIpv4(ip);
    if (isReserved(pool, ip) || store.allocations[key]) continue;
    return {
      store: { ...store, lastAllocated: key, allocations: { ...store.allocations, [key]: owner } },
      ip,
      created: true,
    };
  }
  return undefined;
}

function without(store: StoreData, drop: (a: Allocation) => boolean): { store: StoreData; released: [string, Allocation][] } {
  const kept: Record<string, Allocation> = {};
  const released: [string, Allocation][] = [];
  for (const [ip, a] of Object.entries(store.allocations)) {
    if (drop(a)) released.push([ip, a]);
    else kept[ip] = a;
  }
  return { store: released.length ? { ...store, allocations: kept } : store, released };
}

/** DEL: every address held by (containerId, ifname); none is fine (DEL is idempotent). */
export function release(store: StoreData, containerId: string, ifname: string) {
  return without(store, (a) => a.containerId === containerId && a.ifname === ifname);
}

/** GC: keep only the attachments the runtime still knows about. */
export function retainOnly(store: StoreData, valid: readonly Attachment[]) {
  const keep = new Set(valid.map((v) => `${v.containerId}\u0000${v.ifname}`));
  return without(store, (a) => !keep.has(`${a.containerId}\u0000${a.ifname}`));
}

/** Addresses still free in the pool (STATUS reports an exhausted pool). */
export function freeCount(store: StoreData, pool: Pool): number {
  const { first, last } = bounds(pool);
  let used = 0;
  for (const key of Object.keys(store.allocations)) {
    const ip = parseIpv4(key);
    if (ip !== undefined && contains(pool.subnet, ip) && !isReserved(pool, ip)) used++;
  }
  const gatewayInRange = pool.gateway >= first && pool.gateway <= last ? 1 : 0;
  return last - first + 1 - gatewayInRange - used;
}
