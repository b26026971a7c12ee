// What every command receives: the validated invocation and configuration, and the side
// effects it may use (injected, so tests can replace the lock or the runner).
import type { PluginConfig } from './config.ts';
import type { Runner } from './exec.ts';
import type { Links } from './links.ts';
import type { Invocation } from './spec/env.ts';
import type { Locker } from './ipam/store.ts';
import { FileStore } from './ipam/store.ts';
import { BuiltinIpam } from './ipam/builtin.ts';
import { DelegateIpam } from './ipam/delegate.ts';
import type { Ipam } from './ipam/ipam.ts';
import { hostVethName } from './names.ts';

export interface Deps {
  runner: Runner;
  links: Links;
  locker: Locker;
  env: Record<string, string | undefined>;
  exists(path: string): boolean;
  mac(): string;
  now(): Date;
}

export interface Call {
  inv: Invocation;
  config: PluginConfig;
  deps: Deps;
}

export function builtinStore(call: Call): FileStore | undefined {
  const { config, deps } = call;
  return config.ipam.kind === 'builtin' ? new FileStore(config.ipam.dataDir, config.name, deps.locker) : undefined;
}

export function ipamFor(call: Call): Ipam {
  const { inv, config, deps } = call;
  if (config.ipam.kind === 'delegate') return new DelegateIpam(config.ipam, config, inv, deps.runner, deps.env);
  const hostVeth = inv.containerId ? hostVethName(inv.containerId, inv.ifname) : '';
  return new BuiltinIpam(config.ipam, config.name, builtinStore(call)!, inv, hostVeth, deps.now);
}
