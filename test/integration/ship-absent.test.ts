// An air-gapped install that lacks some release archives (binaries.allowAbsent), and a
// Debian package as an archive (Debian's etcd-server for the master): provision/ run for
// real against scratch roots, from rendered trees, with systemctl and systemd-analyze
// recorders. What is at hand is installed and started; a unit whose program is absent is
// installed and verified, never enabled or started, and said to be idle.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PINNED } from '../../src/config/pins.ts';
import { PATHS, UNITS } from '../../src/plan/paths.ts';
import { imageArchiveName } from '../../src/plan/plan.ts';
import { runRender } from '../../src/render/pipeline.ts';
import { assertPluginBuilt, PLUGIN } from '../helpers/cni.ts';
import { makeReleases, type TestReleases } from '../helpers/ship-releases.ts';
import { clearRecords, recorded, recorderEnv, runScript } from '../helpers/ship-node.ts';

const NODES = `
nodes:
  - { name: master, role: master, ip: 192.168.10.10 }
  - { name: minion1, ip: 192.168.10.21 }
`;
const ETCD_DEB = 'etcd-server_3.4.23-4+b4_amd64.deb';
const ETCD_DEB_URL = `https://deb.debian.org/debian/pool/main/e/etcd/${ETCD_DEB}`;

let dir: string;
let releases: TestReleases;
/** Only the etcd .deb and cri-dockerd's archive: no Kubernetes release at all. */
let partial: string;
let debSha: string;

beforeAll(() => {
  assertPluginBuilt();
  dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-absent-'));
  releases = makeReleases(join(dir, 'releases'));
  partial = join(dir, 'partial');
  mkdirSync(partial);
  copyFileSync(join(releases.dir, basename(PINNED.criDockerd.archive.url)), join(partial, basename(PINNED.criDockerd.archive.url)));
  // A package laid out as Debian's etcd-server is: the daemon at ./usr/bin/etcd of its data.
  const pkg = join(dir, 'pkg');
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(join(pkg, 'usr/bin'), { recursive: true });
  writeFileSync(
    join(pkg, 'DEBIAN/control'),
    'Package: etcd-server\nVersion: 3.4.23-4+b4\nArchitecture: amd64\nMaintainer: test <test@example.org>\nDescription: etcd daemon (test)\n',
  );
  writeFileSync(join(pkg, 'usr/bin/etcd'), '#!/bin/sh\necho "etcd from the .deb"\n', { mode: 0o755 });
  const built = spawnSync('dpkg-deb', ['--root-owner-group', '--build', pkg, join(partial, ETCD_DEB)], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`dpkg-deb: ${built.stderr}`);
  debSha = createHash('sha256')
    .update(readFileSync(join(partial, ETCD_DEB)))
    .digest('hex');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Renders the two nodes with the test releases' pins, the etcd .deb and `binaries`. */
async function render(variant: string, binaries: object): Promise<string> {
  const { versions } = parse(releases.yaml) as { versions: Record<string, unknown> };
  versions.etcd = { version: 'v3.4.23', archive: { url: ETCD_DEB_URL, checksum: `sha256:${debSha}` } };
  const configFile = join(dir, `cluster-${variant}.yaml`);
  writeFileSync(configFile, `${NODES}${stringify({ versions, binaries })}`);
  const outDir = join(dir, `out-${variant}`);
  await runRender({ configFile, outDir, stateDir: join(dir, 'state') });
  return outDir;
}

function node(name: string) {
  const root = join(dir, 'roots', name);
  const record = join(dir, 'records', name);
  mkdirSync(root, { recursive: true });
  mkdirSync(record, { recursive: true });
  return { root, record, env: recorderEnv(record) };
}

const provision = (name: string, n: ReturnType<typeof node>, tree: string, binaries: string, extra: string[] = []) =>
  runScript(
    'provision',
    ['--node', name, '--root', n.root, '--tree', join(tree, name), '--binaries', binaries, ...extra, ...(name === 'master' ? [] : ['--plugin', PLUGIN])],
    n.env,
  );

describe('an air-gapped install with absent archives (binaries.allowAbsent)', () => {
  it('installs what is at hand; units whose program is absent are verified and idle, the others started in order', async () => {
    const out = await render('partial', { dir: partial, allowAbsent: true });
    const m = node('minion1');
    const r = await provision('minion1', m, out, partial, ['--allow-absent']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(m.root, '/usr/local/bin/cri-dockerd'))).toBe(true);
    for (const b of ['kubelet', 'kube-proxy', 'kubectl']) {
      expect(existsSync(join(m.root, `/usr/local/bin/${b}`)), b).toBe(false);
      expect(r.report).toContain(`absent /usr/local/bin/${b}`);
    }
    // cri-dockerd is at hand, so only the Kubernetes units are idle.
    expect(r.report.filter((l) => l.startsWith('idle '))).toEqual([
      `idle ${UNITS.kubelet} /usr/local/bin/kubelet`,
      `idle ${UNITS.kubeProxy} /usr/local/bin/kube-proxy`,
    ]);
    expect(recorded(m.record, 'systemctl').filter((l) => / (kubelet|kube-proxy)\.service$/.test(l))).toEqual([]);
    expect(readFileSync(join(m.record, 'systemd-analyze.log'), 'utf8').trim().split('\n')).toEqual([`verify ${UNITS.kubelet}`, `verify ${UNITS.kubeProxy}`]);
    // The image loader runs too: the runtime is there; the absent archives are said to be absent.
    for (const image of Object.values(PINNED.images).map((i) => imageArchiveName(i.image))) expect(r.report).toContain(`absent ${PATHS.imagesDir}/${image}`);
    const started = [UNITS.nodeNetwork, UNITS.strongswan, UNITS.docker, UNITS.criDockerSocket, UNITS.criDockerService, UNITS.images];
    expect(recorded(m.record, 'systemctl').filter((l) => l.startsWith('enable '))).toEqual(started.map((u) => `enable ${u}`));
    // The unit files are installed all the same.
    expect(existsSync(join(m.root, PATHS.systemdDir, UNITS.kubelet))).toBe(true);

    // Nothing changed: nothing happens, and the idle units are still said to be idle.
    clearRecords(m.record);
    const again = await provision('minion1', m, out, partial, ['--allow-absent']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.report.filter((l) => !l.startsWith('absent ') && !l.startsWith('idle '))).toEqual([]);
    expect(recorded(m.record, 'systemctl')).toEqual([]);

    // The Kubernetes archive arrives: its binaries are installed and the units start.
    clearRecords(m.record);
    const full = await provision('minion1', m, out, releases.dir, ['--allow-absent']);
    expect(full.code, full.stderr).toBe(0);
    expect(full.report).toContain('binary /usr/local/bin/kubelet');
    expect(full.report.filter((l) => l.startsWith('idle ') || l.startsWith('absent '))).toEqual([]);
    expect(recorded(m.record, 'systemctl')).toEqual(
      expect.arrayContaining([`restart ${UNITS.kubelet}`, `enable ${UNITS.kubelet}`, `enable ${UNITS.kubeProxy}`]),
    );
  });

  it('leaves a unit idle when it needs an idle unit, and fails a unit whose verification finds another problem', async () => {
    const none = join(dir, 'none');
    mkdirSync(none, { recursive: true });
    const out = await render('none', { dir: none, allowAbsent: true });
    const m = node('minion1-none');
    const r = await provision('minion1', m, out, none, ['--allow-absent']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report.filter((l) => l.startsWith('idle '))).toEqual([
      `idle ${UNITS.criDockerSocket} activates ${UNITS.criDockerService}`,
      `idle ${UNITS.criDockerService} /usr/local/bin/cri-dockerd`,
      `idle ${UNITS.kubelet} /usr/local/bin/kubelet`,
      `idle ${UNITS.kubeProxy} /usr/local/bin/kube-proxy`,
    ]);

    const broken = node('minion1-broken');
    writeFileSync(join(broken.record, 'verify-fail'), `${UNITS.kubelet}\n`);
    const f = await provision('minion1', broken, out, none, ['--allow-absent']);
    expect(f.code).not.toBe(0);
    expect(f.report).toContain(`failed verify ${UNITS.kubelet}`);
    expect(f.stderr).toContain("Unknown key name 'Bogus'");
  });

  it('without allowAbsent, an absent archive still fails the run before anything changes', async () => {
    const out = await render('strict', { dir: partial });
    const m = node('minion1-strict');
    const r = await provision('minion1', m, out, partial);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('kubernetes-node-linux-amd64.tar.gz');
    expect(existsSync(join(m.root, PATHS.systemdDir))).toBe(false);
  });
});

describe('a Debian package as a release archive', () => {
  it("installs the master's etcd from the package's data, verified by the .deb's sha256", async () => {
    const out = await render('deb', { dir: partial, allowAbsent: true });
    expect(readFileSync(join(out, 'master', PATHS.artifacts), 'utf8')).toContain(`${ETCD_DEB_URL}\tsha256:${debSha}\t./usr/bin/etcd\t/usr/local/bin/etcd`);
    const m = node('master');
    const r = await provision('master', m, out, partial, ['--allow-absent']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(m.root, '/usr/local/bin/etcd'), 'utf8')).toContain('etcd from the .deb');
    expect(r.report).toContain('binary /usr/local/bin/etcd');
    expect(recorded(m.record, 'systemctl')).toContain(`enable ${UNITS.etcd}`);
    expect(r.report.filter((l) => l.startsWith('idle '))).toEqual([
      `idle ${UNITS.apiserver} /usr/local/bin/kube-apiserver`,
      `idle ${UNITS.controllerManager} /usr/local/bin/kube-controller-manager`,
      `idle ${UNITS.scheduler} /usr/local/bin/kube-scheduler`,
      `idle ${UNITS.addons} needs ${UNITS.apiserver}`,
    ]);
    expect(PINNED.etcd.archive.url.endsWith('.tar.gz')).toBe(true);
  });
});
