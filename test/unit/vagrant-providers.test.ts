// cluster.yaml's `vagrant:` per provider: which box each provider boots and which key chose
// it (what the Vagrantfile's errors name), the libvirt overrides, and the keys that are
// refused before anything is rendered.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { parseCluster } from '../../src/config/load.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { clusterSummary } from '../../src/render/readme.ts';
import { LOCAL_BOX, providerBoxes } from '../../src/vagrant/providers.ts';

const NODES = 'nodes:\n  - {name: master, role: master, ip: 192.168.10.10}\n  - {name: minion1, ip: 192.168.10.21}\n';

function issues(yaml: string): { path: string; problem: string; fix: string }[] {
  try {
    parseCluster(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('vagrant boxes per provider', () => {
  it('take vagrant.box unless the provider has its own, and say which key chose them', () => {
    expect(providerBoxes(parseCluster(NODES).vagrant)).toEqual({
      libvirt: { name: 'debian/bookworm64', key: 'vagrant.box', local: false },
      virtualbox: { name: 'debian/bookworm64', key: 'vagrant.box', local: false },
    });
    const c = parseCluster(`${NODES}vagrant:\n  libvirt: {box: ${LOCAL_BOX}}\n  virtualbox: {box: generic/debian12}\n`);
    expect(providerBoxes(c.vagrant)).toEqual({
      libvirt: { name: LOCAL_BOX, key: 'vagrant.libvirt.box', local: true },
      virtualbox: { name: 'generic/debian12', key: 'vagrant.virtualbox.box', local: false },
    });
  });

  it('reach the Vagrantfile through out/cluster.json with the node network and only the libvirt keys that are set', () => {
    const plan = planCluster(
      parseCluster(`${NODES}network: {nodeCidr: 192.168.10.0/24, underlayMtu: 1400}\nvagrant:\n  libvirt: {box: ${LOCAL_BOX}, driver: qemu}\n`),
    );
    const summary = JSON.parse(clusterSummary(plan));
    expect(summary).toMatchObject({ nodeCidr: '192.168.10.0/24', underlayMtu: 1400 });
    expect(summary.vagrant).toEqual({
      box: 'debian/bookworm64',
      boxes: {
        libvirt: { name: LOCAL_BOX, key: 'vagrant.libvirt.box', local: true },
        virtualbox: { name: 'debian/bookworm64', key: 'vagrant.box', local: false },
      },
      libvirt: { driver: 'qemu' },
    });
  });

  it('refuse a CPU model without cpuMode custom, an unknown driver, and the libvirt box for VirtualBox', () => {
    expect(issues(`${NODES}vagrant: {libvirt: {cpuModel: qemu64}}\n`)).toEqual([
      expect.objectContaining({ path: 'vagrant.libvirt.cpuModel', fix: 'set vagrant.libvirt.cpuMode: custom, or remove cpuModel' }),
    ]);
    expect(issues(`${NODES}vagrant: {libvirt: {cpuMode: custom, cpuModel: qemu64}}\n`)).toEqual([]);
    expect(issues(`${NODES}vagrant: {libvirt: {driver: xen}}\n`).map((i) => i.path)).toEqual(['vagrant.libvirt.driver']);
    expect(issues(`${NODES}vagrant: {virtualbox: {box: ${LOCAL_BOX}}}\n`)).toEqual([
      expect.objectContaining({ path: 'vagrant.virtualbox.box', problem: expect.stringContaining('libvirt only') }),
    ]);
  });
});
