// The Vagrantfile's decisions (vagrant/kube_ipsec.rb), run by a real `ruby` the way the
// Vagrantfile runs them: VirtualBox's host-only ranges and networks.conf, libvirt's driver
// and CPU, the box per provider. Host probes are fed fixtures, except the KVM probe of this
// very host, which must agree with what the VM lab's boot probe learns here.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/ship-node.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kube-ipsec-vagrant-host-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Evaluates `expr` (Ruby, with `input` bound to the JSON given) and returns its value as JSON. */
function ruby<T>(expr: string, input: unknown = null): T {
  const program = `require "json"\nrequire_relative ${JSON.stringify(join(repoRoot, 'vagrant', 'kube_ipsec'))}\ninput = JSON.parse(STDIN.read)\nputs JSON.generate(begin\n${expr}\nend)`;
  const r = spawnSync('ruby', ['-e', program], { input: JSON.stringify(input), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ruby failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const NODES = [
  { name: 'master', ip: '192.168.10.10' },
  { name: 'minion1', ip: '192.168.10.21' },
  { name: 'minion2', ip: '192.168.10.22' },
];
const preflight = (conf: string | null, nodes = NODES, nodeCidr = '192.168.10.0/24') =>
  ruby<string | null>('KubeIpsec::VirtualBox.preflight(nodes: input["nodes"], node_cidr: input["cidr"], conf: input["conf"])', { nodes, cidr: nodeCidr, conf });

describe('VirtualBox host-only ranges', () => {
  it('are restricted where Vagrant 2.3 says VirtualBox restricts them', () => {
    const cases: [string, string, boolean][] = [
      ['6.1.26', 'linux', false],
      ['6.1.28', 'linux', true],
      ['6.1.28r147628', 'linux', true],
      ['7.0.10_Debianr158379', 'linux', true],
      ['6.1.30', 'darwin', true],
      ['7.0.0', 'darwin', false],
      ['7.0.10', 'windows', false],
    ];
    const got = ruby<boolean[]>(
      'input.map { |v, p| KubeIpsec::VirtualBox.restricted?(v, p.to_sym) }',
      cases.map(([v, p]) => [v, p]),
    );
    expect(got).toEqual(cases.map((c) => c[2]));
  });

  it('are read from networks.conf as VirtualBox does: every entry of each line starting with *', () => {
    const conf = '# VirtualBox host-only ranges\n* 10.0.0.0/8 192.168.0.0/16\n  * 2001::/64\n10.1.0.0/16\n';
    expect(ruby<string[]>('KubeIpsec::VirtualBox.parse_networks_conf(input)', conf)).toEqual(['10.0.0.0/8', '192.168.0.0/16', '2001::/64']);
  });

  it('stop the default cluster without networks.conf with the exact line, the cluster.yaml alternative, and no VM created', () => {
    const msg = preflight(null)!;
    expect(msg).toContain('VirtualBox allows host-only network addresses only in 192.168.56.0/21 (its default: /etc/vbox/networks.conf does not exist)');
    expect(msg).toContain('every node outside them:\n    master 192.168.10.10, minion1 192.168.10.21, minion2 192.168.10.22');
    // Creating the file replaces VirtualBox's default range: the line keeps it.
    expect(msg).toContain('create /etc/vbox/networks.conf (as root) with this line:\n    * 192.168.56.0/21 192.168.10.0/24\n');
    expect(msg).toContain('network.nodeCidr: 192.168.56.0/24   (master 192.168.56.10, minion1 192.168.56.21, minion2 192.168.56.22)');
    expect(msg).toMatch(/No VM was created\.$/);
  });

  it('let the cluster through once networks.conf allows it, or when it sits in the default range', () => {
    expect(preflight('* 192.168.10.0/24\n')).toBeNull();
    expect(preflight('* 192.168.0.0/16 10.0.0.0/8\n')).toBeNull();
    const moved = NODES.map((n) => ({ ...n, ip: n.ip.replace('192.168.10.', '192.168.56.') }));
    expect(preflight(null, moved, '192.168.56.0/24')).toBeNull();
  });

  it('name only the nodes outside, and the line to add to an existing networks.conf', () => {
    const msg = preflight('* 192.168.10.0/28\n')!;
    expect(msg).toContain('only in the ranges of /etc/vbox/networks.conf: 192.168.10.0/28');
    expect(msg).toContain('2 of 3 nodes outside them:\n    minion1 192.168.10.21, minion2 192.168.10.22');
    expect(msg).toContain('add this line to /etc/vbox/networks.conf (as root):\n    * 192.168.10.0/24\n');
    // The nodes' host parts do not fit in a /28: no example that would not fit.
    expect(msg).toContain('or move the cluster into an allowed range in cluster.yaml: network.nodeCidr and each nodes[].ip\n');
  });

  it('suggest no move that would not fit the allowed range', () => {
    const msg = preflight('* 10.1.2.0/29\n', [{ name: 'master', ip: '192.168.10.10' }])!;
    expect(msg).toContain('or move the cluster into an allowed range in cluster.yaml: network.nodeCidr and each nodes[].ip\n');
    expect(msg).not.toContain('e.g.');
  });
});

describe('libvirt driver and CPU', () => {
  type Accel = { driver: string; cpu_mode: string; cpu_model: string | null; why: string; problem: string | null };
  const accel = (kvm: { ok: boolean; why: string }, over: Record<string, string> = {}) =>
    ruby<Accel>('KubeIpsec::Libvirt.accel(kvm: input["kvm"].transform_keys(&:to_sym), **input["over"].transform_keys(&:to_sym))', { kvm, over });

  it("is KVM with the host CPU when KVM works, software emulation with QEMU's max CPU otherwise", () => {
    expect(accel({ ok: true, why: '/dev/kvm works' })).toMatchObject({ driver: 'kvm', cpu_mode: 'host-passthrough', problem: null });
    expect(accel({ ok: false, why: 'there is no /dev/kvm' })).toMatchObject({
      driver: 'qemu',
      cpu_mode: 'maximum',
      why: 'software emulation: there is no /dev/kvm',
      problem: null,
    });
  });

  it('follows cluster.yaml, and refuses kvm where KVM does not work, naming the key', () => {
    expect(accel({ ok: true, why: '' }, { driver: 'qemu', cpu_mode: 'custom', cpu_model: 'qemu64' })).toMatchObject({
      driver: 'qemu',
      cpu_mode: 'custom',
      cpu_model: 'qemu64',
      problem: null,
    });
    const r = accel({ ok: false, why: 'there is no /dev/kvm' }, { driver: 'kvm' });
    expect(r.problem).toContain('vagrant.libvirt.driver in cluster.yaml is kvm, but there is no /dev/kvm');
    expect(r.problem).toContain('fix: remove vagrant.libvirt.driver');
  });

  it('probes /dev/kvm: missing, not a KVM device, or a PVM-only KVM', () => {
    const probe = (device: string, modules: string) =>
      ruby<{ ok: boolean; why: string }>('KubeIpsec::Libvirt.probe_kvm(device: input[0], modules: input[1]).transform_keys(&:to_s)', [device, modules]);
    const mods = join(scratch, 'modules');
    mkdirSync(join(mods, 'kvm_pvm'), { recursive: true });
    expect(probe(join(scratch, 'no-kvm'), mods)).toEqual({ ok: false, why: `there is no ${join(scratch, 'no-kvm')}` });
    writeFileSync(join(scratch, 'not-kvm'), '');
    expect(probe(join(scratch, 'not-kvm'), mods).why).toMatch(/cannot be used: Inappropriate ioctl/);
    // This host's own device, with a fixture of loaded modules.
    const host = probe('/dev/kvm', '/sys/module');
    if (!existsSync('/dev/kvm')) expect(host.ok).toBe(false);
    else {
      expect(probe('/dev/kvm', mods)).toEqual({ ok: false, why: '/dev/kvm belongs to kvm_pvm, which boots only PVM-enabled guest kernels' });
      mkdirSync(join(mods, 'kvm_intel'));
      expect(probe('/dev/kvm', mods)).toEqual({ ok: true, why: '/dev/kvm works' });
      // The machines this is built on run kvm_pvm alone: the VM lab's boot probe fails there too.
      expect(host.ok).toBe(!(existsSync('/sys/module/kvm_pvm') && !existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')));
    }
  });
});

describe('box per provider', () => {
  const problem = (provider: string, box: { name: string; key: string; local: boolean }, installed: boolean) =>
    ruby<string | null>('KubeIpsec.box_problem(input[0].to_sym, input[1], input[2])', [provider, box, installed]);
  const local = { name: 'kube-ipsec/debian12', key: 'vagrant.libvirt.box', local: true };

  it("stops before a download when kube-ipsec's own box is not installed, naming the key and the fix", () => {
    expect(problem('libvirt', local, false)).toContain('the box kube-ipsec/debian12 (vagrant.libvirt.box in cluster.yaml) is not installed');
    expect(problem('libvirt', local, false)).toContain('`sudo npm run box`');
    expect(problem('virtualbox', { ...local, key: 'vagrant.box' }, false)).toContain(
      'kube-ipsec/debian12 (vagrant.box in cluster.yaml) is a box for libvirt only',
    );
    expect(problem('virtualbox', { ...local, key: 'vagrant.box' }, false)).toContain('set vagrant.virtualbox.box in cluster.yaml');
  });

  it('lets installed boxes and downloadable ones through', () => {
    expect(problem('libvirt', local, true)).toBeNull();
    expect(problem('libvirt', { name: 'debian/bookworm64', key: 'vagrant.box', local: false }, false)).toBeNull();
  });
});
