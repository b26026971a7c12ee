// GC (spec 1.1.0): release every reservation, and remove every host veth on this network's
// bridge, whose attachment is not in cni.dev/valid-attachments.
import type { Attachment } from '../config.ts';
import type { Call } from '../context.ts';
import { ipamFor } from '../context.ts';
import type { LinkJson } from '../links.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';

const ALIAS = /^ipsec-cni:([^/]+)\/(.+)$/;

/** Pure: host veths of this bridge whose alias names an attachment outside `valid`. */
export function staleVeths(veths: Iterable<LinkJson>, bridge: string, valid: readonly Attachment[]): string[] {
  const keep = new Set(valid.map((v) => `${v.containerId}/${v.ifname}`));
  const stale: string[] = [];
  for (const v of veths) {
    const m = v.master === bridge && v.ifalias ? ALIAS.exec(v.ifalias) : null;
    if (m && !keep.has(`${m[1]}/${m[2]}`)) stale.push(v.ifname);
  }
  return stale;
}

export function gc(call: Call): void {
  const { config, deps } = call;
  const valid = config.validAttachments;
  // Never read a missing list as "nothing is valid": that would release every pod's address.
  if (!valid) throw new CniError(ErrorCode.InvalidConfig, "GC needs 'cni.dev/valid-attachments' in the configuration");
  ipamFor(call).gc(valid);
  const stale = staleVeths(deps.links.nodeVeths().values(), config.bridge, valid);
  if (stale.length) deps.links.batch('', stale.map((n) => `link del ${n}`), ['-force']);
}
