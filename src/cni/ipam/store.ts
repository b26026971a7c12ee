// The built-in IPAM store: <dataDir>/<network>.json, changed only inside an exclusive
// lock on <dataDir>/<network>.lock and replaced atomically (temp file + fsync + rename +
// fsync of the directory), so a reader or a crash sees the old or the new file, never half.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { parseIpv4 } from '../ipv4.ts';
import { emptyStore, type Allocation, type StoreData } from './allocator.ts';

/**
 * An exclusive lock that the kernel releases when its holder dies (flock(2) in the plugin,
 * see flock.ts), so a SIGKILLed ADD never leaves the network locked and no stale-lock
 * heuristics are needed. Returns the release function; throws CniError 11 on timeout.
 */
export interface Locker {
  acquire(lockPath: string, timeoutMs: number): () => void;
}

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

export class FileStore {
  readonly path: string;
  readonly lockPath: string;

  constructor(
    private readonly dataDir: string,
    private readonly network: string,
    private readonly locker: Locker,
    private readonly lockTimeoutMs = 10_000,
  ) {
    this.path = join(dataDir, `${network}.json`);
    this.lockPath = join(dataDir, `${network}.lock`);
  }

  /** Current content without locking: the file is only ever replaced whole. */
  read(): StoreData {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyStore(this.network);
      throw new CniError(ErrorCode.IoFailure, `cannot read IPAM store ${this.path}: ${(e as Error).message}`);
    }
    return parseStore(text, this.path, this.network);
  }

  /**
   * One transaction: lock, read, apply `change`, write the result if it is a different
   * object, unlock. `change` must be pure (it may run while other ADDs wait).
   */
  update<T>(change: (data: StoreData) => { store: StoreData; value: T }): T {
    try {
      mkdirSync(this.dataDir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, `cannot create IPAM directory ${this.dataDir}: ${(e as Error).message}`);
    }
    const unlock = this.locker.acquire(this.lockPath, this.lockTimeoutMs);
    try {
      const before = this.read();
      const { store, value } = change(before);
      if (store !== before) this.write(store);
      return value;
    } finally {
      unlock();
    }
  }

  private write(data: StoreData): void {
    const tmp = `${this.path}.tmp`; // one writer at a time (we hold the lock): a fixed name leaves no litter
    try {
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, JSON.stringify(data, null, 1) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      const dir = openSync(this.dataDir, 'r');
      try {
        fsyncSync(dir); // make the rename itself durable
      } finally {
        closeSync(dir);
      }
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, `cannot write IPAM store ${this.path}: ${(e as Error).message}`);
    }
  }
}
