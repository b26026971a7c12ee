// What the commands need from address management; two implementations: the built-in store
// (builtin.ts) and a delegated IPAM plugin found through CNI_PATH (delegate.ts).
import type { Attachment } from '../config.ts';
import type { Result } from '../spec/result.ts';

export interface IpamAdd {
  /** IPAM-level result: ips (without interface index), routes, dns. */
  result: Result;
  /** Gives back what this ADD took (only what it took: a repeated ADD must not free the first one's IP). */
  undo(): void;
}

export interface Ipam {
  add(): IpamAdd;
  del(): void;
  /** Throws CniError when the reservation behind `prev` is gone or different. */
  check(prev: Result): void;
  gc(valid: readonly Attachment[]): void;
  /** Throws CniError 50/51 when ADD could not be served. */
  status(): void;
}
