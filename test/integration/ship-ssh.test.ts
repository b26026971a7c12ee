// `kube-ipsec provision` end to end: the CLI in a host namespace, real ssh2 to a real sshd per
// node namespace (own host key each), provision/ applying into per-node scratch roots. Only
// systemctl and apt-get are recorders (set by each sshd's SetEnv); their logs are asserted on.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { assertPluginBuilt, PLUGIN } from '../helpers/cni.ts';
import { clearRecords, recorded, snapshot } from '../helpers/ship-node.ts';
import { makeReleases, type TestReleases } from '../helpers/ship-releases.ts';
import { sshdLab, type CliRun, type SshdLab } from '../helpers/sshd-lab.ts';

const NODES = [
  { name: 'master', ip: '192.168.10.10' },
  { name: 'minion1', ip: '192.168.10.21' },
  { name: 'minion2', ip: '192.168.10.22' },
  { name: 'minion3', ip: '192.168.10.23' },
  // Not in cluster.yaml until the "adding a minion" test.
  { name: 'minion4', ip: '192.168.10.24' },
];
const MINIONS = ['minion1', 'minion2', 'minion3'];

let lab: SshdLab;
let releases: TestReleases;
let configFile: string;

beforeAll(async () => {
  assertPluginBuilt();
  lab = await sshdLab('ship', NODES);
  releases = makeReleases(join(lab.dir, 'releases'));
  configFile = join(lab.dir, 'cluster.yaml');
});
afterAll(async () => {
  await lab?.cleanup();
});

/** cluster.yaml with the first `count` lab nodes, reached over ssh with the lab's key. */
function writeConfig(extra = '', count = 4, sshExtra: Record<string, string> = {}): void {
  const nodes = NODES.slice(0, count)
    .map((n, i) => `  - { name: ${n.name}, ${i === 0 ? 'role: master, ' : ''}ip: ${n.ip}, ssh: { privateKey: ${lab.clientKey}${sshExtra[n.name] ?? ''} } }`)
    .join('\n');
  writeFileSync(configFile, `nodes:\n${nodes}\n${extra}\n${releases.yaml}`);
}

function provision(...args: string[]): Promise<CliRun> {
  return lab.cli(['provision', '--config', configFile, '--out', join(lab.dir, 'out'), '--known-hosts', lab.knownHosts, '--root', lab.rootOption, ...args]);
}

const node = (name: string) => lab.nodes.get(name)!;
const installed = (name: string, path: string) => readFileSync(join(node(name).root, path), 'utf8');
const roots = () => new Map(NODES.map((n) => [n.name, snapshot(node(n.name).root)]));
const mutations = (name: string) => recorded(node(name).record, 'systemctl');
const clearAll = () => {
  for (const n of NODES) clearRecords(node(n.name).record);
};
/**
 * Installed files whose remembered hash (the node's hashes.tsv) is missing, has another stamp
 * than the file has now, or is wrong: each one the next session would hash again.
 */
function staleHashes(name: string): string[] {
  const root = node(name).root;
  const remembered = new Map(
    readFileSync(join(root, PATHS.provisionStateDir, 'hashes.tsv'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string, string])
      .map(([stamp, hex, path]) => [path, { stamp, hex }]),
  );
  const files = readFileSync(join(root, PATHS.filesManifest), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => join(root, l.split('\t')[1]!));
  if (existsSync(join(root, PATHS.cniPlugin))) files.push(join(root, PATHS.cniPlugin));
  const stamps = new Map(
    execFileSync('stat', ['-c', '%i:%s:%.9Y:%.9Z %n', '--', ...files], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => [l.slice(l.indexOf(' ') + 1), l.slice(0, l.indexOf(' '))]),
  );
  return files.filter((f) => {
    const r = remembered.get(f);
    return !r || r.stamp !== stamps.get(f) || r.hex !== createHash('sha256').update(readFileSync(f)).digest('hex');
  });
}
/** The summary row of a node. */
const row = (run: CliRun, name: string) => run.stdout.split('\n').find((l) => l.startsWith(`  ${name} `)) ?? '';

// Each run takes seconds alone; under CI's full parallel load a test of two runs has taken
// over a minute. sshdLab kills a run that hangs, and the test fails with its output.
describe('kube-ipsec provision over ssh', { timeout: 240_000 }, () => {
  it('provisions a 4-node cluster in parallel into per-node roots', async () => {
    writeConfig();
    const run = await provision();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^provisioned: 4 of 4 nodes ok in [0-9.]+ s$/m);

    for (const n of NODES.slice(0, 4)) {
      const tree = join(lab.dir, 'out', n.name);
      for (const line of readFileSync(join(tree, PATHS.filesManifest), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))) {
        const [mode, path] = line.split('\t') as [string, string];
        expect(installed(n.name, path), `${n.name}:${path}`).toBe(readFileSync(join(tree, path), 'utf8'));
        expect((statSync(join(node(n.name).root, path)).mode & 0o777).toString(8), `${n.name}:${path}`).toBe(mode.slice(1));
      }
      expect(run.stdout).toContain(`${n.name}: connected to root@${n.ip}:22 (cluster.yaml)`);
      expect(row(run, n.name)).toMatch(/changed/);
      expect(mutations(n.name)[0]).toBe('daemon-reload');
      expect(recorded(node(n.name).record, 'apt')).toEqual(['update', expect.stringMatching(/^install \(services held\) strongswan-starter/)]);
    }
    // The plugin where pods run, the CA key on the master only, binaries of each role.
    for (const m of MINIONS) {
      expect(readFileSync(join(node(m).root, PATHS.cniPlugin)).equals(readFileSync(PLUGIN))).toBe(true);
      expect(existsSync(join(node(m).root, PATHS.caKey))).toBe(false);
      expect(installed(m, '/usr/local/bin/kubelet')).toContain('kubelet test-1');
      expect(
        mutations(m)
          .filter((l) => l.startsWith('restart '))
          .slice(2),
      ).toEqual(
        [UNITS.nodeNetwork, UNITS.strongswan, UNITS.docker, UNITS.criDockerSocket, UNITS.criDockerService, UNITS.images, UNITS.kubelet, UNITS.kubeProxy].map(
          (u) => `restart ${u}`,
        ),
      );
    }
    expect(existsSync(join(node('master').root, PATHS.cniPlugin))).toBe(false);
    expect((statSync(join(node('master').root, PATHS.caKey)).mode & 0o777).toString(8)).toBe('600');
    expect(installed('master', '/usr/local/bin/kube-apiserver')).toContain('kube-apiserver test-1');
    // Every hash the next session would look up is current: nothing to read again.
    for (const n of NODES.slice(0, 4)) expect(staleHashes(n.name), n.name).toEqual([]);
    // Progress: one line per fact, prefixed by its node.
    expect(run.stdout).toContain(`minion2: install ${PATHS.kubeletConfig}`);
    expect(run.stdout).toContain(`master: restart ${UNITS.apiserver}`);
  });

  it('re-provisions one minion as a no-op: nothing changed, nothing restarted, no other node touched', async () => {
    const before = roots();
    clearAll();
    const run = await provision('--node', 'minion2');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^minion2: 0 of \d+ files differ; sending 0 files/m);
    expect(row(run, 'minion2')).toMatch(/^\s+minion2\s+ok\s+0 files\s+-\s+[0-9.]+ s/);
    expect(run.stdout).not.toMatch(/^(master|minion1|minion3):/m);
    for (const n of NODES) {
      expect(mutations(n.name), n.name).toEqual([]);
      expect(recorded(node(n.name).record, 'apt'), n.name).toEqual([]);
    }
    expect(roots()).toEqual(before);
    expect(staleHashes('minion2')).toEqual([]);
  });

  it('shows a dry run as a diff, secret files named but never shown, and changes nothing', async () => {
    writeConfig('ipsec: { auth: psk, dpdDelay: 10s }');
    const before = roots();
    const out = snapshot(join(lab.dir, 'out'));
    const state = snapshot(join(lab.dir, '.kube-ipsec'));
    clearAll();
    const run = await provision('--dry-run', '--node', 'minion1');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('--- a/minion1/etc/ipsec.conf\n+++ b/minion1/etc/ipsec.conf\n');
    expect(run.stdout).toMatch(/^-\s+dpddelay=5s$/m);
    expect(run.stdout).toMatch(/^\+\s+dpddelay=10s$/m);
    expect(run.stdout).toContain('--- a/minion1/etc/ipsec.secrets\n+++ b/minion1/etc/ipsec.secrets\n@@ secret file changed; content not shown @@');
    expect(run.stdout).toContain('--- a/minion1/etc/ipsec.d/private/minion1.key\n+++ /dev/null\n@@ secret file removed; content not shown @@');
    expect(run.stdout).not.toMatch(/PSK|BEGIN (EC )?PRIVATE KEY/);
    expect(row(run, 'minion1')).toMatch(/differs .* would reload strongswan-starter\.service/);
    expect(roots()).toEqual(before);
    expect(snapshot(join(lab.dir, 'out'))).toEqual(out);
    expect(snapshot(join(lab.dir, '.kube-ipsec'))).toEqual(state);
    expect(mutations('minion1')).toEqual([]);
  });

  it('re-installs only the files one changed value touches, on only the nodes it touches', async () => {
    writeConfig('network: { clusterDns: 10.30.0.53 }');
    const before = roots();
    clearAll();
    const run = await provision();
    expect(run.code, run.stderr).toBe(0);
    // The master serves that address through CoreDNS's Service: only its manifest changes, and
    // only the add-ons are applied again.
    expect(row(run, 'master')).toMatch(/^\s+master\s+changed\s+1 file\s+restart kube-ipsec-addons\.service/);
    expect(mutations('master')).toEqual([`restart ${UNITS.addons}`]);
    const after = roots();
    const masterChanged = [...after.get('master')!].filter(([p, v]) => before.get('master')!.get(p) !== v).map(([p]) => `/${p}`);
    expect(masterChanged).toEqual([`${PATHS.addonsDir}/20-coredns.yaml`]);
    for (const m of MINIONS) {
      const changedPaths = [...after.get(m)!].filter(([p, v]) => before.get(m)!.get(p) !== v).map(([p]) => `/${p}`);
      expect(changedPaths, m).toEqual([PATHS.kubeletConfig]);
      expect(mutations(m), m).toEqual([`restart ${UNITS.kubelet}`]);
      expect(row(run, m)).toMatch(new RegExp(`${m}\\s+changed\\s+1 file\\s+restart kubelet\\.service`));
    }
  });

  it('leaves the installed tree intact when the transfer is killed midway, and the next run completes', async () => {
    // A new plugin build (and a changed value): the ~100 MB upload is long enough to cut.
    const plugin2 = join(lab.dir, 'ipsec-cni.new');
    copyFileSync(PLUGIN, plugin2);
    appendFileSync(plugin2, 'rebuilt\n');
    writeConfig('network: { clusterDns: 10.30.0.54 }');
    const before = roots();
    clearAll();
    // Slow the host's link so the cut lands midway whatever the machine's load.
    await lab.inHost(['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '400mbit', 'burst', '256kb', 'latency', '100ms']);
    const stagedPlugin = join(node('minion1').root, PATHS.provisionStateDir, 'stage', 'tree', PATHS.cniPlugin);
    const running = lab.start([
      'provision',
      '--config',
      configFile,
      '--out',
      join(lab.dir, 'out'),
      '--known-hosts',
      lab.knownHosts,
      '--root',
      lab.rootOption,
      '--node',
      'minion1',
      '--plugin',
      plugin2,
    ]);
    let cutAt = 0;
    try {
      await waitFor(() => existsSync(stagedPlugin) && statSync(stagedPlugin).size >= 1 << 20, 'the plugin upload to begin');
      cutAt = statSync(stagedPlugin).size;
    } finally {
      // Kill the CLI (the ssh client) while the plugin is half uploaded.
      running.kill();
      await lab.inHost(['tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
    }
    const r = await running.done;
    expect(cutAt).toBeLessThan(statSync(plugin2).size);
    expect(r.signal).toBe('SIGKILL');
    expect(roots()).toEqual(before);
    expect(mutations('minion1')).toEqual([]);

    const next = await provision('--node', 'minion1', '--plugin', plugin2);
    expect(next.code, next.stderr).toBe(0);
    expect(readFileSync(join(node('minion1').root, PATHS.cniPlugin)).equals(readFileSync(plugin2))).toBe(true);
    expect(installed('minion1', PATHS.kubeletConfig)).toContain('10.30.0.54');
    expect(mutations('minion1')).toEqual([`restart ${UNITS.kubelet}`]);
    expect(existsSync(join(node('minion1').root, PATHS.provisionStateDir, 'stage'))).toBe(false);

    // Back to the regular build: a new plugin restarts nothing (runtimes exec it per pod).
    clearAll();
    const back = await provision('--node', 'minion1');
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain(`minion1: install ${PATHS.cniPlugin}`);
    expect(readFileSync(join(node('minion1').root, PATHS.cniPlugin)).equals(readFileSync(PLUGIN))).toBe(true);
    expect(mutations('minion1')).toEqual([]);
  });

  it('refuses a wrong host key, an unknown one, and a wrong pinned fingerprint, sending nothing', async () => {
    writeConfig('network: { clusterDns: 10.30.0.54 }');
    const before = roots();
    clearAll();
    // known_hosts with another key for minion3.
    const wrong = join(lab.dir, 'known_hosts.wrong');
    const impostor = node('minion1').knownHostsLine.split(' ').slice(1).join(' ');
    writeFileSync(wrong, readFileSync(lab.knownHosts, 'utf8').replace(node('minion3').knownHostsLine, `${node('minion3').ip} ${impostor}`));
    const changed = await lab.cli([
      'provision',
      '--config',
      configFile,
      '--out',
      join(lab.dir, 'out'),
      '--known-hosts',
      wrong,
      '--root',
      lab.rootOption,
      '--node',
      'minion3',
    ]);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain(
      `minion3: host key of 192.168.10.23 refused: changed (${node('minion3').fingerprint}); 192.168.10.23 is known with another key: ${wrong}:4`,
    );
    expect(row(changed, 'minion3')).toMatch(/FAILED/);

    const empty = join(lab.dir, 'known_hosts.empty');
    writeFileSync(empty, '');
    const unknown = await lab.cli([
      'provision',
      '--config',
      configFile,
      '--out',
      join(lab.dir, 'out'),
      '--known-hosts',
      empty,
      '--root',
      lab.rootOption,
      '--node',
      'minion3',
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/minion3: host key of 192\.168\.10\.23 refused: unknown .*\n.*compare SHA256:/);

    writeConfig('network: { clusterDns: 10.30.0.54 }', 4, { minion3: `, hostKey: "${node('minion1').fingerprint}"` });
    const pinned = await provision('--node', 'minion3');
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toContain(
      `minion3: host key of 192.168.10.23 refused: changed (${node('minion3').fingerprint}); cluster.yaml pins ${node('minion1').fingerprint}`,
    );

    expect(roots()).toEqual(before);
    expect(mutations('minion3')).toEqual([]);
    expect(existsSync(join(node('minion3').root, PATHS.provisionStateDir, 'stage'))).toBe(false);

    // Asked to, an unknown key is recorded (and then known); the run goes through.
    writeConfig('network: { clusterDns: 10.30.0.54 }');
    const accepted = await lab.cli([
      'provision',
      '--config',
      configFile,
      '--out',
      join(lab.dir, 'out'),
      '--known-hosts',
      empty,
      '--accept-new-host-keys',
      '--root',
      lab.rootOption,
      '--node',
      'minion3',
    ]);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(readFileSync(empty, 'utf8')).toBe(node('minion3').knownHostsLine);
  });

  it('adds a minion: the new node gets everything, the others only their mesh files and a strongSwan reload', async () => {
    // A cluster in sync first, so that only the new node makes a difference.
    writeConfig('network: { clusterDns: 10.30.0.54 }', 4);
    const inSync = await provision();
    expect(inSync.code, inSync.stderr).toBe(0);
    writeConfig('network: { clusterDns: 10.30.0.54 }', 5);
    const before = roots();
    clearAll();
    const run = await provision();
    expect(run.code, run.stderr).toBe(0);
    const after = roots();
    for (const n of ['master', ...MINIONS]) {
      const changedPaths = [...after.get(n)!].filter(([p, v]) => before.get(n)!.get(p) !== v).map(([p]) => `/${p}`);
      expect(changedPaths, n).toEqual([PATHS.ipsecConf]);
      expect(mutations(n), n).toEqual([`reload-or-restart ${UNITS.strongswan}`]);
      expect(installed(n, PATHS.ipsecConf)).toContain('right=192.168.10.24');
    }
    expect(installed('minion4', PATHS.ipsecConf)).toContain('right=192.168.10.10');
    expect(readFileSync(join(node('minion4').root, PATHS.cniPlugin)).length).toBeGreaterThan(0);
    expect(mutations('minion4')).toContain(`restart ${UNITS.kubelet}`);
  });

  it('rolls a node back over ssh', async () => {
    clearAll();
    const before = snapshot(node('master').root);
    const run = await provision('--rollback', '--node', 'master');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`master: install ${PATHS.ipsecConf}`);
    expect(installed('master', PATHS.ipsecConf)).not.toContain('192.168.10.24');
    expect(mutations('master')).toEqual([`reload-or-restart ${UNITS.strongswan}`]);
    expect(snapshot(node('master').root)).not.toEqual(before);
  });
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
