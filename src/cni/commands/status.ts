// STATUS (spec 1.1.0): can this plugin serve ADD right now? 50 = no; 51 = no, and pods
// already on the network may have lost connectivity (their bridge is gone or broken).
import type { Call } from '../context.ts';
import type { LinkJson } from '../kernel.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { StoreReader } from '../ipam/store.ts';

export function status(call: Call): void {
  const { config, deps } = call;
  let bridge: LinkJson | undefined;
  try {
    bridge = deps.links.inspectNode(config.bridge);
  } catch (e) {
    throw new CniError(ErrorCode.NotAvailable, (e as Error).message);
  }
  if (bridge) {
    if (bridge.linkinfo?.info_kind !== 'bridge') {
      throw new CniError(ErrorCode.NotAvailable, `${config.bridge} exists but is a ${bridge.linkinfo?.info_kind ?? 'non-bridge'} device`);
    }
    if (!bridge.flags?.includes('UP')) {
      throw new CniError(ErrorCode.LimitedConnectivity, `bridge ${config.bridge} is down`);
    }
  } else {
    // A missing bridge is normal before the first pod (ADD creates it), not with pods on it.
    const store = call.deps.store(call);
    const pods = store ? Object.keys(safeRead(store)).length : 0;
    if (pods > 0) {
      throw new CniError(ErrorCode.LimitedConnectivity, `bridge ${config.bridge} is missing while ${pods} pod address(es) are allocated`);
    }
  }
  try {
    call.deps.ipam(call).status();
  } catch (e) {
    // Whatever stops the IPAM (missing delegate, unreadable store) means "cannot serve ADD".
    if (e instanceof CniError && (e.code === ErrorCode.NotAvailable || e.code === ErrorCode.LimitedConnectivity)) throw e;
    throw new CniError(ErrorCode.NotAvailable, (e as Error).message, (e as CniError).details);
  }
}

function safeRead(store: StoreReader): Record<string, unknown> {
  try {
    return store.read().allocations;
  } catch {
    return {}; // a corrupt store is reported by the IPAM status check that follows
  }
}
