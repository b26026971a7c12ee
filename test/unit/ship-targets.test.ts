import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCluster } from '../../src/config/load.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { parseSshConfig, resolveTarget, type RunCommand } from '../../src/ship/targets.ts';

// What `vagrant ssh-config minion2` prints (vagrant 2.3, VirtualBox provider).
const VAGRANT_OUTPUT = `Host minion2
  HostName 127.0.0.1
  User vagrant
  Port 2201
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/me/kube ipsec/.vagrant/machines/minion2/virtualbox/private_key"
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

`;

const plan = planCluster(
  parseCluster(`
nodes:
  - { name: master, role: master, ip: 192.168.10.10, ssh: { user: admin, privateKey: keys/id_ed25519, hostKey: "SHA256:${'A'.repeat(43)}" } }
  - { name: minion1, ip: 192.168.10.21, ssh: { host: m1.example, port: 2022, privateKey: ~/.ssh/id_m1 } }
  - { name: minion2, ip: 192.168.10.22 }
`),
);
const node = (name: string) => plan.nodes.find((n) => n.name === name)!;

describe('ship targets', () => {
  it('parse vagrant ssh-config output', () => {
    expect(parseSshConfig(VAGRANT_OUTPUT).get('minion2')).toEqual({
      hostname: '127.0.0.1',
      port: 2201,
      user: 'vagrant',
      identityFiles: ['/home/me/kube ipsec/.vagrant/machines/minion2/virtualbox/private_key'],
    });
  });

  it('take nodes[].ssh from cluster.yaml: the node address and root by default, key paths relative to it', async () => {
    const ctx = { configDir: '/srv/cluster', vagrantEnv: {}, run: (() => Promise.reject(new Error('vagrant must not run'))) as RunCommand };
    expect(await resolveTarget(node('master'), ctx)).toEqual({
      node: 'master',
      host: '192.168.10.10',
      port: 22,
      user: 'admin',
      identityFiles: ['/srv/cluster/keys/id_ed25519'],
      hostKey: `SHA256:${'A'.repeat(43)}`,
      source: 'cluster.yaml',
    });
    expect(await resolveTarget(node('minion1'), ctx)).toMatchObject({
      host: 'm1.example',
      port: 2022,
      user: 'root',
      identityFiles: [join(homedir(), '.ssh/id_m1')],
    });
  });

  it('ask vagrant for nodes without nodes[].ssh, in the config directory with its environment', async () => {
    const calls: unknown[] = [];
    const run: RunCommand = async (file, args, options) => {
      calls.push([file, args, options.cwd, options.env.KUBE_IPSEC_CONFIG]);
      return VAGRANT_OUTPUT;
    };
    const t = await resolveTarget(node('minion2'), { configDir: '/srv/cluster', vagrantEnv: { KUBE_IPSEC_CONFIG: '/srv/cluster/cluster.yaml' }, run });
    expect(calls).toEqual([['vagrant', ['ssh-config', 'minion2'], '/srv/cluster', '/srv/cluster/cluster.yaml']]);
    expect(t).toEqual({
      node: 'minion2',
      host: '127.0.0.1',
      port: 2201,
      user: 'vagrant',
      identityFiles: ['/home/me/kube ipsec/.vagrant/machines/minion2/virtualbox/private_key'],
      source: 'vagrant ssh-config',
    });
  });

  it('say how to fix a node vagrant does not know', async () => {
    const run: RunCommand = () => Promise.reject(new Error('The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH.'));
    await expect(resolveTarget(node('minion2'), { configDir: '/srv', vagrantEnv: {}, run })).rejects.toThrow(
      /minion2: no nodes\[\]\.ssh in cluster\.yaml, and `vagrant ssh-config minion2` failed: The provider .*\n\s+fix: start the VM \(vagrant up minion2\) or describe how to reach the node in nodes\[\]\.ssh/,
    );
  });
});
