// Built-in IPAM: sequential allocation with rotation over the node's pod subnet, kept in
// the locked file store. Each verb is one store transaction.
import { exists, isWritable } from '../sys/fs.ts';
import type { Attachment, BuiltinIpamConfig } from '../config.ts';
import type { Invocation } from '../spec/env.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { Result } from '../spec/result.ts';
import { broadcast, formatCidr, formatIpv4 } from '../ipv4.ts';
import { allocate, findByAttachment, freeCount, release, retainOnly, type Allocation, type Pool, type StoreData } from './allocator.ts';
import type { FileStore } from './store.ts';
import type { Ipam, IpamAdd } from './ipam.ts';

export class BuiltinIpam implements Ipam {
  private readonly pool: Pool;

  constructor(
    private readonly config: BuiltinIpamConfig,
    private readonly network: string,
    private readonly store: FileStore,
    private readonly inv: Invocation,
    private readonly hostVeth: string,
  ) {
    this.pool = { subnet: config.subnet, gateway: config.gateway };
  }

  add(): IpamAdd {
    const owner: Allocation = {
      containerId: this.inv.containerId,
      ifname: this.inv.ifname,
      netns: this.inv.netns,
      hostVeth: this.hostVeth,
      allocatedAt: new Date().toISOString(),
    };
    const podNamespace = this.inv.args.get('K8S_POD_NAMESPACE');
    const podName = this.inv.args.get('K8S_POD_NAME');
    if (podNamespace) owner.podNamespace = podNamespace;
    if (podName) owner.podName = podName;
    const outcome = this.store.update((data) => {
      const o = allocate(data, this.pool, owner);
      if (!o) throw this.exhausted();
      return { store: o.store, value: o };
    });
    const result: Result = {
      ips: [{ address: `${formatIpv4(outcome.ip)}/${this.pool.subnet.prefix}`, gateway: formatIpv4(this.pool.gateway) }],
    };
    return {
      result,
      undo: () => {
        if (outcome.created) this.del();
      },
    };
  }

  del(): void {
    this.store.update((data) => {
      const r = release(data, this.inv.containerId, this.inv.ifname);
      return { store: r.store, value: undefined };
    });
  }

  check(prev: Result): void {
    const held = findByAttachment(this.store.read(), this.inv.containerId, this.inv.ifname);
    if (held === undefined) {
      throw new CniError(ErrorCode.CheckFailed, `no IP reservation for container ${this.inv.containerId} interface ${this.inv.ifname} in ${this.store.path}`);
    }
    const expected = (prev.ips ?? []).map((ip) => ip.address.split('/')[0]);
    if (!expected.includes(held)) {
      throw new CniError(
        ErrorCode.CheckFailed,
        `the store reserves ${held} for container ${this.inv.containerId}/${this.inv.ifname}, prevResult says ${expected.join(', ') || 'nothing'}`,
      );
    }
  }

  gc(valid: readonly Attachment[]): void {
    this.store.update((data) => {
      const r = retainOnly(data, valid);
      return { store: r.store, value: undefined };
    });
  }

  status(): void {
    const dir = this.config.dataDir;
    if (exists(dir) && !isWritable(dir)) throw new CniError(ErrorCode.NotAvailable, `IPAM directory ${dir} is not writable`);
    let data: StoreData;
    try {
      data = this.store.read();
    } catch (e) {
      throw new CniError(ErrorCode.NotAvailable, (e as Error).message, (e as CniError).details);
    }
    if (freeCount(data, this.pool) <= 0) throw this.exhausted(ErrorCode.NotAvailable);
  }

  private exhausted(code: number = ErrorCode.PoolExhausted): CniError {
    const usable = broadcast(this.pool.subnet) - this.pool.subnet.network - 2;
    return new CniError(
      code,
      `no free address in ${formatCidr(this.pool.subnet)} for network ${this.network}: all ${usable - 1} assignable addresses are allocated`,
      `network, broadcast and gateway ${formatIpv4(this.pool.gateway)} are never assigned; release addresses with DEL or GC (store ${this.store.path})`,
    );
  }
}
