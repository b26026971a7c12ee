// The Vagrantfile, checked by Debian's vagrant without any VM or provider: `vagrant
// validate --ignore-provider` loads it (rendering the node list it reads), and validates
// every machine's network, provider and provisioner settings, file sources included.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertPluginBuilt } from '../helpers/cni.ts';
import { repoRoot } from '../helpers/ship-node.ts';
import { makeReleases, type TestReleases } from '../helpers/ship-releases.ts';

let dir: string;
let releases: TestReleases;
beforeAll(() => {
  assertPluginBuilt(); // the minions' file provisioner uploads dist/ipsec-cni
  dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-vagrant-'));
  releases = makeReleases(join(dir, 'releases'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function validate(config: string) {
  const r = spawnSync('vagrant', ['validate', '--ignore-provider'], {
    encoding: 'utf8',
    env: {
      ...process.env,
      VAGRANT_CWD: repoRoot,
      VAGRANT_HOME: join(dir, 'vagrant.d'),
      VAGRANT_DOTFILE_PATH: join(dir, 'dot-vagrant'),
      KUBE_IPSEC_CONFIG: config,
      KUBE_IPSEC_OUT: join(dir, 'out'),
      KUBE_IPSEC_STATE: join(dir, 'state'),
    },
  });
  return { code: r.status, output: r.stdout + r.stderr };
}

describe('Vagrantfile', () => {
  it('validates, with one machine per node of cluster.yaml, rendering the node list it needs', () => {
    const config = join(dir, 'cluster.yaml');
    writeFileSync(
      config,
      `nodes:\n  - { name: master, role: master, ip: 192.168.10.10 }\n  - { name: minion1, ip: 192.168.10.21 }\n  - { name: minion2, ip: 192.168.10.22, memory: 1024 }\n${releases.yaml}`,
    );
    expect(existsSync(join(dir, 'out'))).toBe(false);
    const r = validate(config);
    expect(r.output).toContain('Vagrantfile validated successfully.');
    expect(r.code).toBe(0);
    for (const n of ['master', 'minion1', 'minion2']) expect(r.output).toContain(`==> ${n}: Ignoring provider config for validation...`);
    expect(r.output).not.toContain('minion3');
    const summary = JSON.parse(readFileSync(join(dir, 'out', 'cluster.json'), 'utf8'));
    expect(summary.nodes.map((n: { name: string; memory: number; runsPods: boolean }) => [n.name, n.memory, n.runsPods])).toEqual([
      ['master', 2048, false],
      ['minion1', 2048, true],
      ['minion2', 1024, true],
    ]);
    expect(existsSync(join(repoRoot, '.vagrant'))).toBe(false);
    // Each machine is handed only the archives of binaries.dir it installs, each with where the
    // node keeps its copy (install-binaries' cache for a release, the image's place for an image).
    type Binary = { file: string; held: string };
    const of = (name: string): Binary[] => summary.nodes.find((n: { name: string }) => n.name === name).binaries;
    const fileNames = (name: string) => of(name).map((b) => b.file);
    expect(fileNames('master')).toEqual(expect.arrayContaining(['kubernetes-server-linux-amd64.tar.gz']));
    expect(fileNames('master').join(' ')).not.toMatch(/kubernetes-node|cri-dockerd|\.tar$/);
    expect(fileNames('minion1')).toEqual(expect.arrayContaining(['kubernetes-node-linux-amd64.tar.gz']));
    expect(fileNames('minion1').join(' ')).not.toMatch(/kubernetes-server|etcd/);
    expect(of('minion1')).toEqual(of('minion2'));
    for (const b of [...of('master'), ...of('minion1')]) {
      expect(existsSync(join(releases.dir, b.file)), b.file).toBe(true);
      expect(b.held, b.file).toMatch(
        b.file.endsWith('.tar')
          ? new RegExp(`^/var/lib/kube-ipsec/images/${b.file}$`)
          : new RegExp(`^/var/cache/kube-ipsec/archives/sha(256|512)-[0-9a-f]+/${b.file}$`),
      );
    }
    expect(summary.cniPlugin).toBe('/opt/cni/bin/ipsec-cni');
  });

  it('fails validation when the air-gapped binaries directory is missing, naming it', () => {
    const config = join(dir, 'airgap.yaml');
    writeFileSync(config, `nodes:\n  - { name: master, role: master, ip: 192.168.10.10 }\n${releases.yaml.replace(releases.dir, './no-such-dir')}`);
    const r = validate(config);
    expect(r.code).toBe(1);
    expect(r.output).toContain('kube-ipsec upload:');
    expect(r.output).toContain(
      `${join(dir, 'no-such-dir', 'kubernetes-server-linux-amd64.tar.gz')} is missing: binaries.dir in ${config} lacks it: \`npm run binaries\` builds`,
    );
  });

  it('does not share the project directory (every node key, the CA key) with the VMs', () => {
    const vagrantfile = readFileSync(join(repoRoot, 'Vagrantfile'), 'utf8');
    expect(vagrantfile).toMatch(/^\s*config\.vm\.synced_folder "\.", "\/vagrant", disabled: true$/m);
    expect(vagrantfile).not.toMatch(/synced_folder(?![^\n]*disabled: true)/);
  });
});
