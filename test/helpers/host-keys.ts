// The host key policy the known_hosts tests check against: minion1's address on port 22,
// one known_hosts file in the test's directory, new keys refused unless a test says so.
import { join } from 'node:path';
import type { HostKeyPolicy } from '../../src/ship/known-hosts.ts';

export function hostKeyPolicy(dir: string, over: Partial<HostKeyPolicy> = {}): HostKeyPolicy {
  return { host: '192.168.10.21', port: 22, knownHosts: [join(dir, 'kh')], acceptNew: false, ...over };
}
