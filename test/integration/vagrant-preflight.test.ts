// The Vagrantfile's preflight, run by Debian's real vagrant: `vagrant up` stops before any VM
// exists, naming the key to change. VirtualBox cannot be installed here, so its VBoxManage
// is a stub that answers `--version` (what Vagrant's driver asks first) and records every
// other call: a preflight that let `up` go on would show up as a call to create something.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/ship-node.ts';

let dir: string;
beforeAll(() => {
  assertPluginBuilt();
  dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-vagrant-preflight-'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(
    join(dir, 'bin', 'VBoxManage'),
    `#!/bin/sh\nprintf '%s\\n' "$*" >>${join(dir, 'vboxmanage.calls')}\n[ "$1" = --version ] && { echo 7.0.10r158379; exit 0; }\necho "VBoxManage stub: $* is not emulated" >&2\nexit 1\n`,
  );
  chmodSync(join(dir, 'bin', 'VBoxManage'), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function up(name: string, yaml: string, provider: 'virtualbox' | 'libvirt') {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, yaml);
  const r = spawnSync('vagrant', ['up', '--provider', provider], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
      VAGRANT_CWD: repoRoot,
      VAGRANT_HOME: join(dir, 'vagrant.d'),
      VAGRANT_DOTFILE_PATH: join(dir, `${name}.vagrant`),
      KUBE_IPSEC_CONFIG: config,
      KUBE_IPSEC_OUT: join(dir, `${name}.out`),
      KUBE_IPSEC_STATE: join(dir, 'state'),
    },
  });
  return { code: r.status, output: r.stdout + r.stderr };
}

const NODES = 'nodes:\n  - { name: master, role: master, ip: 192.168.10.10 }\n  - { name: minion1, ip: 192.168.10.21 }\n';

/** What Ruby's probe says of this host's /dev/kvm (the Vagrantfile's own choice). */
function hostKvm(): boolean {
  const r = spawnSync('ruby', ['-r', join(repoRoot, 'vagrant', 'kube_ipsec.rb'), '-e', 'print KubeIpsec::Libvirt.probe_kvm[:ok]'], { encoding: 'utf8' });
  return r.stdout === 'true';
}

describe('vagrant up preflight', () => {
  it('VirtualBox: nodes outside the host-only ranges stop up before anything is created, with the networks.conf line', () => {
    const r = up('vbox', NODES, 'virtualbox');
    expect(r.code).toBe(1);
    expect(r.output).toContain('Running trigger: kube-ipsec: preflight');
    expect(r.output).toContain('VirtualBox allows host-only network addresses only in 192.168.56.0/21');
    expect(r.output).toContain('    * 192.168.56.0/21 192.168.10.0/24\n');
    expect(r.output).toContain('network.nodeCidr: 192.168.56.0/24');
    expect(r.output).not.toContain('not within the allowed ranges'); // Vagrant's own, later, per VM
    expect(readFileSync(join(dir, 'vboxmanage.calls'), 'utf8').trim().split('\n')).toEqual(['--version']);
    expect(existsSync(join(dir, 'vbox.vagrant', 'machines', 'master', 'virtualbox', 'id'))).toBe(false);
  });

  it("libvirt: kube-ipsec's own box must be added first (npm run box), named by its key", () => {
    const r = up('box', `${NODES}vagrant:\n  libvirt: { box: kube-ipsec/debian12 }\n`, 'libvirt');
    expect(r.code).toBe(1);
    expect(r.output).toContain('the box kube-ipsec/debian12 (vagrant.libvirt.box in cluster.yaml) is not installed');
    expect(r.output).toContain('sudo npm run box');
    expect(r.output).not.toMatch(/Box .* could not be found|Downloading/);
  });

  it('libvirt: driver kvm is refused where /dev/kvm does not run ordinary guests', () => {
    const r = up('kvm', `${NODES}vagrant:\n  libvirt: { driver: kvm }\n`, 'libvirt');
    expect(r.code).toBe(1);
    if (hostKvm()) {
      expect(r.output).toContain('kube-ipsec: libvirt driver kvm, CPU host-passthrough (vagrant.libvirt.driver: kvm)');
    } else {
      expect(r.output).toContain('vagrant.libvirt.driver in cluster.yaml is kvm, but');
      expect(r.output).toContain('fix: remove vagrant.libvirt.driver');
    }
  });
});
