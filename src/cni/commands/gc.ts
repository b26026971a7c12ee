// GC (spec 1.1.0): release every reservation, and remove every host veth on this network's
// bridge, whose attachment is not in cni.dev/valid-attachments.
import type { Attachment } from '../config.ts';
import type { Call } from '../context.ts';
import type { LinkJson } from '../kernel.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { hostVethName } from '../names.ts';

const ALIAS = /^ipsec-cni:([^/]+)\/(.+)$/;
const OUR_NAME = /^veth[0-9a-f]{11}$/;

/**
 * Pure: host veths on this bridge that belong to no valid attachment. A veth names its
 * attachment in its alias; one without an alias yet (its ADD was killed right after creating
 * it) is recognised by its name, which is derived from the attachment (names.ts).
 */
export function staleVeths(veths: Iterable<LinkJson>, bridge: string, valid: readonly Attachment[]): string[] {
  const keep = new Set(valid.map((v) => `${v.containerId}/${v.ifname}`));
  const keepNames = new Set(valid.map((v) => hostVethName(v.containerId, v.ifname)));
  const stale: string[] = [];
  for (const v of veths) {
    if (v.master !== bridge) continue;
    const m = v.ifalias ? ALIAS.exec(v.ifalias) : null;
    if (m) {
      if (!keep.has(`${m[1]}/${m[2]}`)) stale.push(v.ifname);
    } else if (!v.ifalias && OUR_NAME.test(v.ifname) && !keepNames.has(v.ifname)) {
      stale.push(v.ifname);
    }
  }
  return stale;
}

export function gc(call: Call): void {
  const { config, deps } = call;
  const valid = config.validAttachments;
  // Never read a missing list as "nothing is valid": that would release every pod's address.
  if (!valid) throw new CniError(ErrorCode.InvalidConfig, "GC needs 'cni.dev/valid-attachments' in the configuration");
  call.deps.ipam(call).gc(valid);
  const stale = staleVeths(deps.links.nodeVeths().values(), config.bridge, valid);
  deps.links.deleteLinks(stale);
}
