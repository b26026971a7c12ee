// binaries.allowAbsent and Debian packages as release archives: the config rules and the
// archive members a .deb yields (what a run reports is tested on real VMs, test/vm/).
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { parseCluster } from '../../src/config/load.ts';
import { planCluster } from '../../src/plan/plan.ts';
import { artifactMembers, isDebianPackage } from '../../src/render/artifacts.ts';
import { clusterYaml } from '../helpers/cluster.ts';

const DEB = {
  version: 'v3.4.23',
  archive: { url: 'https://deb.debian.org/debian/pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb', checksum: `sha256:${'ab'.repeat(32)}` },
};

function problemsOf(text: string): string[] {
  try {
    parseCluster(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.problem}`);
    throw err;
  }
  return [];
}

describe('binaries.allowAbsent', () => {
  it('needs binaries.dir', () => {
    expect(problemsOf(clusterYaml({ binaries: { allowAbsent: true } }))).toEqual([
      'binaries.allowAbsent: only applies to an air-gapped install (without binaries.dir every archive is downloaded)',
    ]);
    const plan = planCluster(parseCluster(clusterYaml({ binaries: { dir: './binaries', allowAbsent: true } })));
    expect(plan.binariesAllowAbsent).toBe(true);
    expect(planCluster(parseCluster(clusterYaml({ binaries: { dir: './binaries' } }))).binariesAllowAbsent).toBe(false);
  });
});

describe('a Debian package as the etcd archive', () => {
  it('is accepted with its version named without the v, and yields the daemon from its data', () => {
    expect(problemsOf(clusterYaml({ 'versions.etcd': DEB }))).toEqual([]);
    const plan = planCluster(parseCluster(clusterYaml({ 'versions.etcd': DEB })));
    expect(isDebianPackage(plan.versions.etcd.archive)).toBe(true);
    const etcd = artifactMembers(plan, plan.master).filter((m) => m.artifact === plan.versions.etcd.archive);
    expect(etcd.map((m) => [m.member, m.dest])).toEqual([['./usr/bin/etcd', '/usr/local/bin/etcd']]);
  });

  it('still refuses a URL that names another version', () => {
    expect(problemsOf(clusterYaml({ 'versions.etcd': { ...DEB, version: 'v3.4.30' } }))).toEqual([
      'versions.etcd.archive.url: does not name versions.etcd.version = v3.4.30',
    ]);
  });
});
