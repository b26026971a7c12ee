// provision/ run for real (bash, tar, dpkg-query, flock, cmp…) against scratch roots, the
// way `vagrant provision` runs it: from a rendered tree. Only systemctl and apt-get are
// recorders, and their logs are what these tests assert on.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { assertPluginBuilt, PLUGIN } from '../helpers/cni.ts';
import { clearRecords, PROVISION, RECORDERS, recorded, runScript, scratchCluster, snapshot, type NodeDirs, type ScratchCluster } from '../helpers/ship-node.ts';

const NODES = `
nodes:
  - { name: master, role: master, ip: 192.168.10.10 }
  - { name: minion1, ip: 192.168.10.21 }
  - { name: minion2, ip: 192.168.10.22 }
`;

let c: ScratchCluster;
/** Rendered trees: the cluster as is, and with one or two values changed. */
const out = { base: '', dns: '', psk: '', dnsAndDpd: '', containerd: '' };
/** minion1 provisioned from `base` once; tests start from copies of it. */
let golden: NodeDirs;

beforeAll(async () => {
  assertPluginBuilt();
  c = await scratchCluster('scripts');
  out.base = await c.render('base', NODES);
  out.dns = await c.render('dns', NODES + 'network: { clusterDns: 10.30.0.53 }\n');
  out.psk = await c.render('psk', NODES + 'ipsec: { auth: psk }\n');
  out.dnsAndDpd = await c.render('dns-dpd', NODES + 'network: { clusterDns: 10.30.0.53 }\nipsec: { dpdDelay: 10s }\n');
  out.containerd = await c.render('containerd', NODES + 'runtime: containerd\n');
  golden = c.node('golden');
  const r = await provision('minion1', golden, fromTree(out.base, 'minion1'));
  if (r.code !== 0) throw new Error(`provisioning the golden minion1 failed: ${r.stderr}`);
});
afterAll(() => c?.cleanup());

const provision = (node: string, n: NodeDirs, extra: string[], onSpawn?: (pid: number) => void) =>
  runScript('provision', ['--node', node, '--root', n.root, ...extra], n.env, onSpawn);
const fromTree = (outDir: string, node: string) => ['--tree', join(outDir, node), '--plugin', PLUGIN, '--binaries', c.releases.dir];
const file = (root: string, path: string) => readFileSync(join(root, path), 'utf8');
const modeOf = (root: string, path: string) => (statSync(join(root, path)).mode & 0o777).toString(8);

describe('provision/ scripts', () => {
  it('pass shellcheck', () => {
    const scripts = [...readdirSync(PROVISION).map((f) => join(PROVISION, f)), ...readdirSync(RECORDERS).map((f) => join(RECORDERS, f))];
    const r = spawnSync('shellcheck', ['-x', '--severity=style', ...scripts], { encoding: 'utf8', cwd: PROVISION });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('use the on-node paths of src/plan/paths.ts', () => {
    const lib = file(PROVISION, 'lib.sh');
    const constant = (name: string) => new RegExp(`^readonly ${name}=(.*)$`, 'm').exec(lib)?.[1];
    expect(constant('STATE_DIR')).toBe(PATHS.provisionStateDir);
    expect(constant('ARCHIVE_CACHE')).toBe(PATHS.archiveCache);
    expect(constant('FILES_MANIFEST')).toBe(PATHS.filesManifest);
    expect(constant('RESTART_MAP')).toBe(PATHS.restartMap);
    expect(constant('NODE_ENV')).toBe(PATHS.nodeEnv);
    expect(constant('ARTIFACTS')).toBe(PATHS.artifacts);
    expect(constant('SYSTEMD_DIR')).toBe(PATHS.systemdDir);
  });

  it('install a minion from its tree: files with their modes, plugin, binaries, packages, units in bring-up order', () => {
    const tree = join(out.base, 'minion1');
    for (const line of file(tree, PATHS.filesManifest)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))) {
      const [mode, path] = line.split('\t') as [string, string];
      expect(file(golden.root, path), path).toBe(file(tree, path));
      expect(modeOf(golden.root, path), path).toBe(mode.slice(1));
    }
    expect(readFileSync(join(golden.root, PATHS.cniPlugin)).equals(readFileSync(PLUGIN))).toBe(true);
    expect(modeOf(golden.root, PATHS.cniPlugin)).toBe('755');
    expect(file(golden.root, '/usr/local/bin/kubelet')).toContain('kubelet test-1');
    expect(modeOf(golden.root, '/usr/local/bin/kubelet')).toBe('755');
    expect(existsSync(join(golden.root, PATHS.caKey))).toBe(false);

    // Packages installed once, with services held back until apply starts them in order.
    expect(recorded(golden.record, 'apt')).toEqual([
      'update',
      expect.stringMatching(/^install \(services held\) strongswan-starter .*docker\.io apparmor containernetworking-plugins$/),
    ]);
    expect(existsSync(join(golden.root, 'usr/sbin/policy-rc.d'))).toBe(false);
    const bringUp = [
      UNITS.nodeNetwork,
      UNITS.strongswan,
      UNITS.docker,
      UNITS.criDockerSocket,
      UNITS.criDockerService,
      UNITS.images,
      UNITS.kubelet,
      UNITS.kubeProxy,
    ];
    expect(recorded(golden.record, 'systemctl')).toEqual([
      'daemon-reload',
      `restart ${UNITS.modulesLoad}`,
      `restart ${UNITS.sysctl}`,
      ...bringUp.map((u) => `restart ${u}`),
      ...bringUp.map((u) => `enable ${u}`),
    ]);
    expect(existsSync(join(golden.root, PATHS.provisionStateDir, 'stage'))).toBe(false);
  });

  it('change nothing, install nothing and restart nothing the second time', async () => {
    const n = c.node('idem', golden);
    const before = snapshot(n.root);
    const second = await provision('minion1', n, fromTree(out.base, 'minion1'));
    expect(second.code, second.stderr).toBe(0);
    expect(second.report).toEqual([]);
    expect(recorded(n.record, 'systemctl')).toEqual([]);
    expect(recorded(n.record, 'apt')).toEqual([]);
    expect(snapshot(n.root)).toEqual(before);
  });

  it('re-install only what a changed value touches, restart only its unit, and roll it back', async () => {
    const n = c.node('change', golden);
    const v1 = snapshot(n.root);
    const r = await provision('minion1', n, fromTree(out.dns, 'minion1'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.report).toEqual([`install ${PATHS.kubeletConfig}`, `restart ${UNITS.kubelet}`]);
    expect(recorded(n.record, 'systemctl')).toEqual([`restart ${UNITS.kubelet}`]);
    expect(file(n.root, PATHS.kubeletConfig)).toContain('10.30.0.53');

    clearRecords(n.record);
    const back = await provision('minion1', n, ['--rollback']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.report).toEqual([`install ${PATHS.kubeletConfig}`, `restart ${UNITS.kubelet}`]);
    expect(snapshot(n.root)).toEqual(v1);
  });

  it('remove files that leave the tree, reloading strongSwan for a mesh change only', async () => {
    const n = c.node('removal', golden);
    const r = await provision('minion1', n, fromTree(out.psk, 'minion1'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.report.filter((l) => l.startsWith('remove '))).toEqual([
      'remove /etc/ipsec.d/cacerts/kube-ipsec-ike-ca.pem',
      'remove /etc/ipsec.d/certs/minion1.pem',
      'remove /etc/ipsec.d/private/minion1.key',
    ]);
    expect(existsSync(join(n.root, '/etc/ipsec.d/private/minion1.key'))).toBe(false);
    expect(file(n.root, PATHS.ipsecSecrets)).toContain(': PSK');
    expect(modeOf(n.root, PATHS.ipsecSecrets)).toBe('600');
    expect(recorded(n.record, 'systemctl')).toEqual([`reload-or-restart ${UNITS.strongswan}`]);
  });

  it('stop and disable a unit that leaves the tree before removing it (docker → containerd)', async () => {
    const n = c.node('runtime', golden);
    const r = await provision('minion1', n, fromTree(out.containerd, 'minion1'));
    expect(r.code, r.stderr).toBe(0);
    const gone = [UNITS.criDockerService, UNITS.criDockerSocket, UNITS.docker];
    for (const u of gone) {
      expect(r.report).toContain(`stop ${u}`);
      expect(r.report).toContain(`remove ${PATHS.systemdDir}/${u}`);
      expect(existsSync(join(n.root, PATHS.systemdDir, u))).toBe(false);
    }
    const log = recorded(n.record, 'systemctl');
    // Stopped before daemon-reload forgets them; the new runtime starts before the kubelet.
    expect(log.indexOf(`disable ${UNITS.docker}`)).toBeLessThan(log.indexOf('daemon-reload'));
    expect(log.indexOf(`restart ${UNITS.containerd}`)).toBeLessThan(log.indexOf(`restart ${UNITS.kubelet}`));
    expect(log).toContain(`enable ${UNITS.containerd}`);
    expect(file(n.root, '/usr/local/sbin/runc')).toContain('runc.amd64 test-1');
    expect(file(n.root, '/usr/local/bin/containerd')).toContain('containerd test-1');
    expect(recorded(n.record, 'apt')).toEqual([]);
  });

  it('keep the restarts owed by a run killed after its files were swapped in, and do them on the next run', async () => {
    const n = c.node('killed', golden);
    writeFileSync(join(n.record, 'hang'), 'reload-or-restart\n');
    let pid = 0;
    const killed = provision('minion1', n, fromTree(out.dnsAndDpd, 'minion1'), (p) => (pid = p));
    await waitFor(() => existsSync(join(n.record, 'hanging')), 'the run to reach its first reload');
    process.kill(-pid, 'SIGKILL');
    expect((await killed).signal).toBe('SIGKILL');
    // The files were in place; what was owed (strongSwan, kubelet) was not done yet.
    expect(file(n.root, PATHS.kubeletConfig)).toContain('10.30.0.53');
    expect(recorded(n.record, 'systemctl')).toEqual([]);

    rmSync(join(n.record, 'hang'));
    const next = await provision('minion1', n, fromTree(out.dnsAndDpd, 'minion1'));
    expect(next.code, next.stderr).toBe(0);
    expect(next.report).toEqual(['resume', `reload ${UNITS.strongswan}`, `restart ${UNITS.kubelet}`]);
    expect(existsSync(join(n.root, PATHS.provisionStateDir, 'txn'))).toBe(false);
  });

  it('fail on a unit that does not restart, keep what it owes, and finish once the unit is fixed', async () => {
    const n = c.node('failing', golden);
    writeFileSync(join(n.record, 'fail'), `${UNITS.kubelet}\n`);
    const failed = await provision('minion1', n, fromTree(out.dns, 'minion1'));
    expect(failed.code).toBe(1);
    expect(failed.report).toContain(`failed restart ${UNITS.kubelet}`);
    expect(failed.stderr).toMatch(/kubelet\.service failed\. The new files are installed .* provision --rollback/);

    rmSync(join(n.record, 'fail'));
    clearRecords(n.record);
    const fixed = await provision('minion1', n, fromTree(out.dns, 'minion1'));
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.report).toEqual(['resume', `restart ${UNITS.kubelet}`]);
    expect(recorded(n.record, 'systemctl')).toEqual([`restart ${UNITS.kubelet}`]);
  });

  it('refuse bad input with the offending name and the fix, before changing anything', async () => {
    const n = c.node('refusals');
    const refused = async (node: string, args: string[], message: RegExp, env = n.env) => {
      const r = await runScript('provision', ['--node', node, '--root', n.root, ...args], env);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(snapshot(n.root)).toEqual(new Map());
      expect(recorded(n.record, 'systemctl')).toEqual([]);
      expect(recorded(n.record, 'apt')).toEqual([]);
    };
    const minion1 = join(out.base, 'minion1');
    // Air-gapped directory without one archive: named, with its checksum and URL.
    const partial = join(c.dir, 'partial-releases');
    cpSync(c.releases.dir, partial, { recursive: true });
    rmSync(join(partial, 'kubernetes-node-linux-amd64.tar.gz'));
    const sha = c.releases.checksums.get('kubernetes-node-linux-amd64.tar.gz');
    await refused(
      'minion1',
      ['--tree', minion1, '--plugin', PLUGIN, '--binaries', partial],
      new RegExp(`air-gapped install: ${partial}/kubernetes-node-linux-amd64.tar.gz is missing.*expected sha256:${sha}.*https://dl.k8s.io/`),
    );
    // An archive that is not the pinned one is never unpacked.
    writeFileSync(join(partial, 'kubernetes-node-linux-amd64.tar.gz'), 'not the release');
    await refused('minion1', ['--tree', minion1, '--plugin', PLUGIN, '--binaries', partial], /checksum mismatch: expected sha256:[0-9a-f]{64}, got sha256:/);
    // Another node's tree, or a tree without the plugin it needs.
    await refused('minion1', fromTree(out.base, 'minion2'), /the tree is minion2's, not minion1's/);
    await refused('minion1', ['--tree', minion1, '--binaries', c.releases.dir], /--plugin FILE is required: minion1 runs pods/);
    // A tree missing a file its manifest lists.
    const broken = join(c.dir, 'broken-tree');
    cpSync(minion1, broken, { recursive: true });
    rmSync(join(broken, PATHS.kubeletConfig));
    await refused('minion1', ['--tree', broken, '--plugin', PLUGIN, '--binaries', c.releases.dir], /the stage lacks \/var\/lib\/kubelet\/config\.yaml/);
    // Without stand-ins, a scratch root would make systemctl act on this machine.
    await refused('minion1', fromTree(out.base, 'minion1'), /set KUBE_IPSEC_SYSTEMCTL to a stand-in; the real systemctl would act on this machine/, {});
  });

  it('refuse to turn one node into another', async () => {
    const n = c.node('identity', golden);
    const before = snapshot(n.root);
    const r = await provision('minion2', n, fromTree(out.base, 'minion2'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/this machine is minion1 \(per \/etc\/kube-ipsec\/node\.env\), not minion2/);
    expect(snapshot(n.root)).toEqual(before);
  });

  it('install the master without the plugin, its CA key private', async () => {
    const n = c.node('master');
    const r = await provision('master', n, ['--tree', join(out.base, 'master'), '--binaries', c.releases.dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(modeOf(n.root, PATHS.caKey)).toBe('600');
    expect(existsSync(join(n.root, PATHS.cniPlugin))).toBe(false);
    expect(file(n.root, '/usr/local/bin/etcd')).toContain('etcd test-1');
    expect(file(n.root, '/usr/local/bin/kube-apiserver')).toContain('kube-apiserver test-1');
  });
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
