// DEL: idempotent and tolerant. The pod's interface goes first, the address last, so an
// address is never free while an interface still carries it; if DEL is interrupted in
// between, the next DEL (runtimes retry) or GC finishes the job.
import type { Call } from '../context.ts';
import { hostVethAlias, hostVethName } from '../names.ts';

export function del(call: Call): void {
  const { inv, deps } = call;
  // No netns (never given, or already destroyed): the kernel removed the pair with it.
  const podSide = inv.netns && deps.exists(inv.netns) ? deps.links.deletePodInterface(inv.netns, inv.ifname) : 'absent';
  // Deleting the pod end took the host end with it. Otherwise a host end can still exist if
  // the pod's netns lives on and DEL came without it (or an ADD died half-way).
  if (podSide === 'absent') {
    deps.links.deleteHostVeths([{ name: hostVethName(inv.containerId, inv.ifname), alias: hostVethAlias(inv.containerId, inv.ifname) }]);
  }
  call.deps.ipam(call).del();
}
