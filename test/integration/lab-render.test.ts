// The lab's overrides, measured on the real pipeline: rendered the lab's way (ESP in
// userspace) and the VMs' way from the same cluster.yaml and PKI state, the trees differ
// only in what ipsec.espMode governs — strongSwan loading kernel-libipsec, the pod MTU
// capped at the TUN's 1400, and the guard letting pod packets into that ESP device (ipsec0),
// the inbound chain letting them out of it;
// the lab's short lifetimes change the three lifetime lines of ipsec.conf and nothing else.
// And a tree rendered for kernel ESP is refused where the kernel has none, naming the fix.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTree, renderForLab, SHORT_LIFETIMES, useRendered } from '../../src/lab/render.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { defaultClusterYaml } from '../helpers/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-labrender-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the lab render', () => {
  it("differs from the VMs' render only in strongswan.conf (kernel-libipsec), the pod MTU and the way into and out of ipsec0", async () => {
    const configFile = join(dir, 'cluster.yaml');
    writeFileSync(configFile, defaultClusterYaml());
    const lab = await renderForLab(configFile, join(dir, 'lab'), 'userspace', 'rendered');
    await runRender({ configFile, outDir: join(dir, 'vm-out'), stateDir: join(dir, 'lab', 'pki') });
    for (const node of lab.plan.nodes) {
      const vm = new Map(readTree(join(dir, 'vm-out', node.name)).map((f) => [f.path, f]));
      const ours = lab.nodes.get(node.name)!;
      expect(ours.map((f) => [f.path, f.mode])).toEqual([...vm.values()].map((f) => [f.path, f.mode]));
      const differing = ours.filter((f) => f.content !== vm.get(f.path)!.content).map((f) => f.path);
      const always = ['/etc/kube-ipsec/node-network.nft', '/etc/strongswan.conf'];
      expect(differing, node.name).toEqual(node.runsPods ? ['/etc/cni/net.d/10-kube-ipsec.conflist', ...always] : always);
      const nft = ours.find((f) => f.path === '/etc/kube-ipsec/node-network.nft')!.content;
      expect(nft.replace(/\n\t# ipsec0 is strongSwan's userspace ESP.*/, '').replaceAll(', "ipsec0" }', ' }')).toBe(
        vm.get('/etc/kube-ipsec/node-network.nft')!.content,
      );
      const conf = ours.find((f) => f.path === '/etc/strongswan.conf')!.content;
      expect(conf.replace(/\n *# ESP in userspace.*\n *kernel-libipsec \{\n *load = yes\n *\}/, '')).toBe(vm.get('/etc/strongswan.conf')!.content);
      if (node.runsPods) {
        const mtu = (text: string) => (JSON.parse(text) as { plugins: { mtu: number }[] }).plugins[0]!.mtu;
        expect(mtu(ours.find((f) => f.path === '/etc/cni/net.d/10-kube-ipsec.conflist')!.content)).toBe(1400);
        expect(mtu(vm.get('/etc/cni/net.d/10-kube-ipsec.conflist')!.content)).toBe(1423);
      }
    }
  }, 60_000);

  it("with short lifetimes, changes ipsec.conf's lifetimes and rekey margin, and nothing else", async () => {
    const configFile = join(dir, 'cluster.yaml');
    const rendered = await renderForLab(configFile, join(dir, 'lab'), 'userspace', 'rendered');
    cpSync(join(dir, 'lab', 'pki'), join(dir, 'lab-short', 'pki'), { recursive: true }); // the same credentials
    const short = await renderForLab(configFile, join(dir, 'lab-short'), 'userspace', 'short');
    expect(short.plan.ipsec).toMatchObject(SHORT_LIFETIMES);
    for (const node of rendered.plan.nodes) {
      const before = new Map(rendered.nodes.get(node.name)!.map((f) => [f.path, f.content]));
      const changed = short.nodes.get(node.name)!.filter((f) => f.content !== before.get(f.path));
      expect(changed.map((f) => f.path)).toEqual(['/etc/ipsec.conf']);
      const lines = (text: string) => text.split('\n');
      const diff = lines(changed.find((f) => f.path === '/etc/ipsec.conf')!.content).filter((l, i) => l !== lines(before.get('/etc/ipsec.conf')!)[i]);
      expect(diff).toEqual([
        `    ikelifetime=${SHORT_LIFETIMES.ikeLifetime}`,
        `    lifetime=${SHORT_LIFETIMES.lifetime}`,
        `    rekeymargin=${SHORT_LIFETIMES.rekeyMargin}`,
      ]);
    }
  }, 60_000);

  it('refuses an out/ tree rendered for kernel ESP when the lab runs it in userspace, and takes its own', () => {
    expect(() => useRendered(join(dir, 'cluster.yaml'), join(dir, 'vm-out'), 'userspace')).toThrow(
      /master\/etc\/strongswan.conf does not load kernel-libipsec, but the lab runs with ESP in the userspace .*render with `ipsec.espMode: userspace`/,
    );
    expect(useRendered(join(dir, 'cluster.yaml'), join(dir, 'lab', 'out'), 'userspace').nodes.get('minion1')!.length).toBeGreaterThan(10);
    expect(() => useRendered(join(dir, 'cluster.yaml'), join(dir, 'nowhere'), 'userspace')).toThrow(/nowhere\/master does not exist/);
  });
});
