// What `kube-ipsec check` needs on a node is what provisioning installs there: every tool the
// ssh backend requires comes from a package every node gets, or from one Debian always has.
import { describe, expect, it } from 'vitest';
import { NODE_TOOLS } from '../../src/check/ssh-backend.ts';
import { osPackages } from '../../src/render/artifacts.ts';
import { plan } from '../helpers/cluster.ts';

/** Priority "required" in Debian 12: on every installed system. */
const ESSENTIAL = ['coreutils', 'util-linux'];

describe('the tools kube-ipsec check runs on a node', () => {
  const p = plan();
  it.each(p.nodes.map((n) => [n.name, n] as const))('are installed on %s by provisioning', (_name, node) => {
    const installed = new Set([...osPackages(p, node), ...ESSENTIAL]);
    const missing = Object.entries(NODE_TOOLS).filter(([, pkg]) => !installed.has(pkg));
    expect(missing).toEqual([]);
  });
});
