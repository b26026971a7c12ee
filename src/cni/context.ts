// What every command receives: the validated invocation and configuration, and the side
// effects it may use. Types only: main.ts (the composition root) supplies the
// implementations, so the commands' pure parts load under Node for unit tests.
import type { PluginConfig } from './config.ts';
import type { Links } from './links.ts';
import type { Invocation } from './spec/env.ts';
import type { Ipam } from './ipam/ipam.ts';
import type { StoreReader } from './ipam/store.ts';

export interface Deps {
  links: Links;
  /** Address management for this call: the built-in store or the delegated plugin. */
  ipam(call: Call): Ipam;
  /** The built-in store (undefined with a delegated IPAM). */
  store(call: Call): StoreReader | undefined;
  exists(path: string): boolean;
  mac(): string;
}

export interface Call {
  inv: Invocation;
  config: PluginConfig;
  deps: Deps;
}
