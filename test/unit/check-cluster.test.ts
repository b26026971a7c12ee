// `kube-ipsec check`'s pure parts: the cluster's topology and test pods, the OpenSSH command
// lines (host key pinned, sudo for other users, sessions per node), what an underlay capture
// keeps on a real node, which interface is the underlay, when an IPAM store is put back, and
// the unit that captures through a reboot.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootCaptureScript, bootCaptureUnit, type BootCaptureSpec } from '../../src/check/boot-capture.ts';
import { clusterTopology, runPrefix } from '../../src/check/cluster.ts';
import { hostKeyAlgorithms, perNodeSessions, pinnedKnownHostsLine, remoteCommand, sshArgv, type OpenSshNode } from '../../src/check/openssh.ts';
import { interfaceOf, underlayFilter } from '../../src/check/ssh-backend.ts';
import { restoration, restoreArgv } from '../../src/check/test-pods.ts';
import type { Runner } from '../../src/run.ts';
import { plan, repoRoot } from '../helpers/cluster.ts';

describe('the cluster as the check sees it', () => {
  const p = plan();
  const t = clusterTopology(p, 'kic0a1b', 2);

  it('addresses nodes by name and gives every node that runs pods its test pods, named after the run', () => {
    expect(t.nodes.map((n) => [n.name, n.ns, n.ip, n.podSubnet, n.pods.length])).toEqual([
      ['master', 'master', '192.168.10.10', '10.240.0.0/24', 0],
      ['minion1', 'minion1', '192.168.10.21', '10.240.1.0/24', 2],
      ['minion2', 'minion2', '192.168.10.22', '10.240.2.0/24', 2],
      ['minion3', 'minion3', '192.168.10.23', '10.240.3.0/24', 2],
    ]);
    expect(t.nodes[1]!.pods[1]).toEqual({
      node: 'minion1',
      name: 'minion1-pod2',
      ns: 'kic0a1b-minion1-pod2',
      containerId: 'kube-ipsec-check-kic0a1b-minion1-pod2',
    });
    expect(t.upstream).toBeUndefined();
    expect(t).toMatchObject({ prefix: 'kic0a1b', podCidr: '10.240.0.0/16', nodeCidr: '192.168.10.0/24', underlayMtu: 1500 });
  });

  it('names each run differently', () => {
    const prefixes = new Set(Array.from({ length: 50 }, runPrefix));
    expect(prefixes.size).toBeGreaterThan(45);
    for (const x of prefixes) expect(x).toMatch(/^kic[0-9a-z]{4}$/);
  });

  it('captures IPsec and pod-range packets on a real underlay, and node-to-node packets too with node encryption', () => {
    expect(underlayFilter(t, false)).toBe('ip and (ip proto 50 or udp port 500 or udp port 4500 or net 10.240.0.0/16)');
    const two = { ...t, nodes: t.nodes.slice(0, 2) };
    expect(underlayFilter(two, true)).toBe(
      'ip and (ip proto 50 or udp port 500 or udp port 4500 or net 10.240.0.0/16 or ((src host 192.168.10.10 or src host 192.168.10.21) and (dst host 192.168.10.10 or dst host 192.168.10.21)))',
    );
  });

  it("finds the interface holding the node's address", () => {
    const out = [
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 100.64.10.21/24 brd 100.64.10.255 scope global eth0\\       valid_lft forever preferred_lft forever',
      '3: eth1    inet 192.168.10.21/24 brd 192.168.10.255 scope global eth1\\       valid_lft forever preferred_lft forever',
      '4: ipsec-br01    inet 10.240.1.1/24 brd 10.240.1.255 scope global ipsec-br01\\       valid_lft forever preferred_lft forever',
    ].join('\n');
    expect(interfaceOf(out, '192.168.10.21')).toBe('eth1');
    expect(interfaceOf(out, '192.168.10.2')).toBeUndefined();
  });
});

describe('OpenSSH to a node', () => {
  const node: OpenSshNode = {
    name: 'minion1',
    host: '192.168.121.5',
    port: 22,
    user: 'vagrant',
    identityFiles: ['/home/u/.vagrant.d/insecure_private_key'],
    knownHosts: '/tmp/run/known_hosts-minion1',
    hostKeyAlgorithms: hostKeyAlgorithms('ssh-ed25519'),
    controlPath: '/tmp/run/minion1.ctl',
  };

  it('accepts exactly the key the policy accepted, under the node name, and reads no ssh_config', () => {
    const argv = sshArgv(node, ['ip', 'netns', 'add', 'kic0a1b-minion1-pod1']);
    expect(argv.slice(0, 3)).toEqual(['ssh', '-F', 'none']);
    for (const o of [
      'StrictHostKeyChecking=yes',
      'UserKnownHostsFile=/tmp/run/known_hosts-minion1',
      'GlobalKnownHostsFile=/dev/null',
      'HostKeyAlias=minion1',
      'HostKeyAlgorithms=ssh-ed25519',
      'BatchMode=yes',
      'IdentitiesOnly=yes',
      'ControlPath=/tmp/run/minion1.ctl',
      'ControlMaster=no',
    ]) {
      expect(argv, o).toContain(o);
    }
    expect(argv.slice(-3)).toEqual(['--', '192.168.121.5', 'sudo -n -- ip netns add kic0a1b-minion1-pod1']);
    expect(pinnedKnownHostsLine('minion1', Buffer.from('\0\0\0\x0bssh-ed25519\0\0\0\x20' + 'k'.repeat(32), 'latin1'))).toMatch(
      /^minion1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/=]+\n$/,
    );
  });

  it('quotes for the remote shell, and needs no sudo as root', () => {
    expect(remoteCommand('root', ['sh', '-c', "echo 'a b' $x"])).toBe(`sh -c 'echo '\\''a b'\\'' $x'`);
    expect(remoteCommand('admin', ['true'])).toBe('sudo -n -- true');
  });

  it('signs RSA host keys with SHA-2 only', () => {
    expect(hostKeyAlgorithms('ssh-rsa')).toEqual(['rsa-sha2-512', 'rsa-sha2-256']);
    expect(hostKeyAlgorithms('ecdsa-sha2-nistp256')).toEqual(['ecdsa-sha2-nistp256']);
  });

  it('runs at most `limit` sessions per node at once (sshd MaxSessions), other commands freely', async () => {
    let running = 0;
    let most = 0;
    const slow: Runner = {
      async run(argv) {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return { code: 0, stdout: argv.join(' '), stderr: '' };
      },
    };
    const limited = perNodeSessions(slow, 3);
    await Promise.all(Array.from({ length: 12 }, () => limited.run(sshArgv(node, ['true']))));
    expect(most).toBe(3);
    most = 0;
    await Promise.all(Array.from({ length: 6 }, () => limited.run(['true'])));
    expect(most).toBe(6);
  });
});

describe('IPAM stores put back as found', () => {
  const s = { path: '/var/lib/cni/ipsec-cni/kube-ipsec.json', network: 'kube-ipsec' };
  const store = (allocations: Record<string, unknown>, last?: string) =>
    JSON.stringify({ version: 1, network: 'kube-ipsec', allocations, ...(last && { lastAllocated: last }) }, null, 1) + '\n';
  const real = { containerId: 'c0ffee', ifname: 'eth0', podName: 'web-1' };

  it('puts back the rotation cursor when only the test pods came and went', () => {
    const before = store({ '10.240.1.2': real }, '10.240.1.2');
    const now = store({ '10.240.1.2': real }, '10.240.1.4');
    const r = restoration(s, before, now);
    expect(r).toMatchObject({ action: 'restore' });
    expect(restoration(s, before, before)).toEqual({ action: 'none' });
  });

  it('removes a store the node did not have, if the test pods left it empty', () => {
    expect(restoration(s, undefined, store({}, '10.240.1.3'))).toMatchObject({ action: 'remove' });
  });

  it("leaves a store alone that the runtime's pods changed meanwhile, or that is unreadable", () => {
    const before = store({ '10.240.1.2': real }, '10.240.1.2');
    expect(restoration(s, before, store({}, '10.240.1.4'))).toMatchObject({ action: 'leave', why: expect.stringMatching(/other pods/) });
    expect(restoration(s, undefined, store({ '10.240.1.9': real }))).toMatchObject({ action: 'leave' });
    expect(restoration(s, before, '{not json')).toMatchObject({ action: 'leave', why: expect.stringMatching(/corrupt/) });
    expect(restoration(s, before, undefined)).toMatchObject({ action: 'leave', why: expect.stringMatching(/removed/) });
  });

  it("writes only under the plugin's lock, only over the content it read", () => {
    const argv = restoreArgv(
      { ...s, node: 'minion1', lock: '/var/lib/cni/ipsec-cni/kube-ipsec.lock', text: 'x' },
      { action: 'restore', nowSha256: 'ab'.repeat(32) },
    );
    expect(argv.slice(0, 4)).toEqual(['flock', '-w', '10', '/var/lib/cni/ipsec-cni/kube-ipsec.lock']);
    expect(argv.slice(-2)).toEqual([s.path, 'ab'.repeat(32)]);
    expect(argv[6]).toMatch(/exit 3;.*mv -f "\$1\.tmp" "\$1"/);
  });
});

describe('a capture through a reboot', () => {
  const spec: BootCaptureSpec = {
    unit: 'kube-ipsec-check-kic0a1b-reboot-minion2.service',
    dir: '/var/lib/kube-ipsec-check/kic0a1b/reboot-minion2',
    dev: 'eth1',
    filter: 'ip and (ip proto 50 or net 10.240.0.0/16)',
    snaplen: 160,
    deadline: 1800000000,
    lifetimeS: 3600,
  };

  it('starts before the node network at every boot until its deadline, a new file each time', () => {
    const unit = bootCaptureUnit(spec);
    expect(unit).toMatch(/^After=sys-subsystem-net-devices-eth1\.device network\.target$/m);
    expect(unit).toMatch(/^Before=kube-ipsec-network\.service strongswan-starter\.service$/m);
    expect(unit).toMatch(/^WantedBy=multi-user\.target$/m);
    expect(unit).toMatch(/^RuntimeMaxSec=3600$/m);
    const script = bootCaptureScript(spec);
    expect(script).toMatch(/^\[ "\$\(date \+%s\)" -lt 1800000000 \] \|\| exit 0$/m);
    expect(script).toMatch(
      /^exec tcpdump --immediate-mode -nn -U -Z root -s 160 -Q out -i eth1 -w \/var\/lib\/kube-ipsec-check\/kic0a1b\/reboot-minion2\/capture\.\$\(date \+%s%N\)\.pcap 'ip and \(ip proto 50 or net 10\.240\.0\.0\/16\)'$/m,
    );
    expect(bootCaptureUnit({ ...spec, dev: 'kil-eth' })).toMatch(/sys-subsystem-net-devices-kil\\x2deth\.device/);
  });
});

describe('the layout', () => {
  it('keeps checking a cluster a feature of the product: nothing in src/check imports src/lab', () => {
    const dir = join(repoRoot, 'src', 'check');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(20);
    const offenders = files.filter((f) => /from '(\.\.\/)+lab\//.test(readFileSync(join(dir, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
