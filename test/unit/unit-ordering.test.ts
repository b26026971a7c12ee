// The boot transaction of a node's units, as far as the rendered files decide it: no ordering
// cycle through the default dependencies systemd adds. Seen live: the node network ordered
// before cri-docker.socket (a socket is before sockets.target, before basic.target, which every
// ordinary service comes after), systemd broke the cycle by dropping the socket at boot, and
// cri-dockerd and the kubelet stayed dead after a reboot.
import { describe, expect, it } from 'vitest';
import { PATHS } from '../../src/plan/paths.ts';
import { renderCluster } from '../../src/render/index.ts';
import { loadTemplates } from '../../src/render/templates.ts';
import { placeholderPki, plan as planOf } from '../helpers/cluster.ts';

const templates = loadTemplates();

/** Each rendered unit's name → its [Unit] Before= entries and whether it keeps systemd's default dependencies. */
function units(runtime: 'docker' | 'containerd'): Map<string, { before: string[]; defaultDeps: boolean }> {
  const p = planOf({ runtime });
  const files = renderCluster(p, placeholderPki(p), templates).nodes.get('minion1')!;
  const out = new Map<string, { before: string[]; defaultDeps: boolean }>();
  for (const f of files.filter((x) => x.path.startsWith(`${PATHS.systemdDir}/`) && /\.(service|socket)$/.test(x.path))) {
    const text = f.content.toString();
    const before = [...text.matchAll(/^Before=(.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
    out.set(f.path.slice(PATHS.systemdDir.length + 1), { before, defaultDeps: !/^DefaultDependencies=no$/m.test(text) });
  }
  return out;
}

describe('unit ordering at boot', () => {
  for (const runtime of ['docker', 'containerd'] as const) {
    it(`${runtime}: no unit with default dependencies orders itself before a socket unit`, () => {
      const u = units(runtime);
      expect(u.size).toBeGreaterThan(3);
      const offenders = [...u]
        .filter(([, x]) => x.defaultDeps)
        .flatMap(([name, x]) => x.before.filter((b) => b.endsWith('.socket')).map((b) => `${name} Before=${b}`));
      expect(offenders).toEqual([]);
    });
  }

  it('the node network still comes before the runtime and the kubelet', () => {
    expect(units('docker').get('kube-ipsec-network.service')!.before).toEqual([
      'strongswan-starter.service',
      'docker.service',
      'cri-docker.service',
      'kubelet.service',
    ]);
  });
});
