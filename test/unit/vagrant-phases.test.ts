// Reading where a `vagrant up --provision` spent its time, from Vagrant's own lines (as
// printed by Vagrant 2.3.4 with vagrant-libvirt 0.11.2 here), stamped on arrival.
import { describe, expect, it } from 'vitest';
import { cleanLines, machinePhases, type StampedLine } from '../vagrant/phases.ts';

const stamped = (rows: [number, string][]): StampedLine[] => rows.map(([t, line]) => ({ t, line }));

describe('vagrant up phases', () => {
  it('drops colours, progress redraws and blank lines', () => {
    expect(
      cleanLines(
        '\x1b[0mProgress: 0%\r\x1b[KProgress: 100%\r\x1b[K==> master: Creating image (snapshot of base box volume).\n\n    master: SSH username: vagrant\n',
      ),
    ).toEqual(['==> master: Creating image (snapshot of base box volume).', '    master: SSH username: vagrant']);
  });

  it('splits each machine of a parallel up into box import, boot, configure and provisioning', () => {
    const lines = stamped([
      [0.9, "Bringing machine 'master' up with 'libvirt' provider..."],
      [1.0, '==> master: Running action triggers before up ...'],
      [1.1, '==> minion1: Running action triggers before up ...'],
      [3.0, '==> master: Uploading base box image as volume into Libvirt storage...'],
      [4.5, '==> master: Creating image (snapshot of base box volume).'],
      [4.6, '==> minion1: Creating image (snapshot of base box volume).'],
      [6.0, '==> master: Starting domain.'],
      [6.2, '==> minion1: Starting domain.'],
      [6.3, '==> master: Waiting for domain to get an IP address...'],
      [40.0, '    master: SSH address: 192.168.121.58:22'],
      [61.0, '==> master: Machine booted and ready!'],
      [70.0, '==> minion1: Machine booted and ready!'],
      [72.0, '==> master: Setting hostname...'],
      [80.0, '==> master: Running provisioner: kube-ipsec-upload-dir (shell)...'],
      [81.0, '==> minion1: Running provisioner: kube-ipsec-upload-dir (shell)...'],
      [95.0, '    master: provision: install /etc/ipsec.conf'],
      [120.0, '    minion1: reload strongswan-starter.service'],
    ]);
    expect(machinePhases(lines)).toEqual([
      { machine: 'master', first: 1.0, last: 95.0, boxImport: 1.5, boot: 55, configure: 19, provisioning: 15 },
      { machine: 'minion1', first: 1.1, last: 120.0, boot: 63.8, configure: 11, provisioning: 39 },
    ]);
  });
});
