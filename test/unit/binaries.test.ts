// `npm run binaries`' pure parts (src/binaries/): the staging replaces read from a Kubernetes
// release's go.mod and the wrapper module built from them, the build plan for the pinned
// versions (names, members and flags that must match the official archives and upstream's own
// build), cache keys, and how a binaries.dir's kube-ipsec-binaries.json changes what a render
// pins. Packing with GNU tar and loading the images: test/integration/binaries-pack.test.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { binaryNames, goBinaryName, goBuildArgs, recipeKey } from '../../src/binaries/build.ts';
import { goAtLeast } from '../../src/binaries/go.ts';
import { stagingReplaces, wrapperGoMod } from '../../src/binaries/gomod.ts';
import {
  applyBuiltBinaries,
  builtFor,
  MANIFEST_FILE,
  versionDrift,
  withBuiltChecksums,
  writeManifest,
  type BinariesManifest,
} from '../../src/binaries/manifest.ts';
import { binariesPlan, imageTag, type GoRecipe, type Recipe } from '../../src/binaries/recipes.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { PINNED, type Versions } from '../../src/config/pins.ts';
import { imageArchiveName, planCluster } from '../../src/plan/plan.ts';
import { artifactMembers, imageArchives } from '../../src/render/artifacts.ts';
import { config } from '../helpers/cluster.ts';

// Every manifest these tests write goes below this one directory (node fs only: the unit tier
// runs with nothing but node on PATH), removed at the end.
const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-binaries-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plan = binariesPlan(PINNED, 'docker');
const recipe = (name: string) => plan.recipes.find((r) => r.name === name)!;
const goRecipe = (name: string) => recipe(name) as GoRecipe;

// The shape of k8s.io/kubernetes' go.mod (abridged): a generated header in comments, require
// blocks naming the staging modules at v0.0.0, then one replace block pointing each at
// ./staging/src/…. The single-line replaces, the comments inside the block and the non-staging
// replaces are not in a real release's go.mod; they are there because the go.mod grammar
// allows them and a future release could use them.
const RELEASE_GO_MOD = `// This is a generated file. Do not edit directly.
// Ensure you've carefully read
// https://git.k8s.io/community/contributors/devel/sig-architecture/vendor.md
// Run hack/pin-dependency.sh to change pinned dependency versions.
// Run hack/update-vendor.sh to update go.mod files and the vendor directory.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
	github.com/spf13/cobra v1.10.1
	k8s.io/api v0.0.0
	k8s.io/apiextensions-apiserver v0.0.0
	k8s.io/client-go v0.0.0
	k8s.io/kms v0.0.0
)

require (
	github.com/go-logr/logr v1.4.3 // indirect
	k8s.io/cri-client v0.0.0 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	// k8s.io/commented-out => ./staging/src/k8s.io/commented-out
	k8s.io/apiextensions-apiserver => ./staging/src/k8s.io/apiextensions-apiserver // a trailing comment
	k8s.io/client-go v0.0.0 => ./staging/src/k8s.io/client-go
	github.com/example/fork => github.com/example/fork v1.2.3
	example.com/sibling => ../sibling
)

replace k8s.io/kms => ./staging/src/k8s.io/kms

replace k8s.io/cri-client v0.0.0 => ./staging/src/k8s.io/cri-client // single-line, with a version

replace github.com/other/thing v1.0.0 => github.com/other/thing v1.0.1
`;

describe('staging replaces from a release go.mod', () => {
  it('lists every module replaced by ./staging/…, from the block and from single lines, at the published v0.<minor>.<patch>', () => {
    expect(stagingReplaces(RELEASE_GO_MOD, 'v1.37.1')).toEqual(
      ['k8s.io/api', 'k8s.io/apiextensions-apiserver', 'k8s.io/client-go', 'k8s.io/kms', 'k8s.io/cri-client'].map((path) => ({ path, version: 'v0.37.1' })),
    );
  });

  it('reads CRLF line ends as well (a go.mod checked out on Windows)', () => {
    expect(stagingReplaces(RELEASE_GO_MOD.replace(/\n/g, '\r\n'), 'v1.37.1').map((r) => r.path)).toContain('k8s.io/client-go');
  });

  it.each(['v1.37.0-rc.1', '1.37.1', 'v2.0.0', 'v1.37', 'v0.37.1'])('refuses %s: not a Kubernetes release version', (version) => {
    expect(() => stagingReplaces(RELEASE_GO_MOD, version)).toThrow(`not a Kubernetes release version: '${version}' (expected v1.<minor>.<patch>)`);
  });

  it("refuses a go.mod that replaces no staging module: it is not a Kubernetes release's", () => {
    const noStaging =
      'module example.com/x\n\ngo 1.26.0\n\nreplace (\n\tgithub.com/a/b => github.com/a/b v1.0.0\n\t// k8s.io/api => ./staging/src/k8s.io/api\n)\nreplace example.com/y => ../y\n';
    expect(() => stagingReplaces(noStaging, 'v1.37.1')).toThrow(
      "the go.mod of k8s.io/kubernetes v1.37.1 replaces no staging module: not a Kubernetes release's go.mod",
    );
    expect(() => stagingReplaces('', 'v1.37.1')).toThrow(/replaces no staging module/);
  });
});

describe('the wrapper module', () => {
  it('requires the release, replaces each staging module by its published version, and lists the main packages as tools', () => {
    const text = wrapperGoMod({
      module: 'kube-ipsec.local/build/kubernetes',
      go: '1.26.0',
      requires: [{ path: 'k8s.io/kubernetes', version: 'v1.37.1' }],
      replaces: stagingReplaces(RELEASE_GO_MOD, 'v1.37.1').slice(0, 2),
      tools: ['k8s.io/kubernetes/cmd/kubelet', 'k8s.io/kubernetes/test/images/agnhost'],
    });
    expect(text).toBe(
      [
        '// Generated by kube-ipsec (npm run binaries): builds released modules from the Go module proxy.',
        'module kube-ipsec.local/build/kubernetes',
        '',
        'go 1.26.0',
        '',
        'require (',
        '\tk8s.io/kubernetes v1.37.1',
        ')',
        '',
        'replace (',
        '\tk8s.io/api => k8s.io/api v0.37.1',
        '\tk8s.io/apiextensions-apiserver => k8s.io/apiextensions-apiserver v0.37.1',
        ')',
        '',
        'tool (',
        '\tk8s.io/kubernetes/cmd/kubelet',
        '\tk8s.io/kubernetes/test/images/agnhost',
        ')',
        '',
      ].join('\n'),
    );
  });

  it('leaves out an empty block (etcd needs no replace)', () => {
    const text = wrapperGoMod({
      module: 'kube-ipsec.local/build/etcd',
      go: '1.24',
      requires: [{ path: 'go.etcd.io/etcd/server/v3', version: 'v3.6.6' }],
      replaces: [],
      tools: ['go.etcd.io/etcd/server/v3'],
    });
    expect(text).toBe(
      [
        '// Generated by kube-ipsec (npm run binaries): builds released modules from the Go module proxy.',
        'module kube-ipsec.local/build/etcd',
        '',
        'go 1.24',
        '',
        'require (',
        '\tgo.etcd.io/etcd/server/v3 v3.6.6',
        ')',
        '',
        'tool (',
        '\tgo.etcd.io/etcd/server/v3',
        ')',
        '',
      ].join('\n'),
    );
  });
});

describe('the build plan for the pinned versions', () => {
  it('names each archive as its pinned URL does, so install-binaries finds it in binaries.dir', () => {
    const urls = [PINNED.kubernetes.server.url, PINNED.kubernetes.node.url, PINNED.etcd.archive.url, PINNED.criDockerd.archive.url];
    expect(plan.archives.map((a) => a.file)).toEqual(urls.map((u) => basename(u)));
    expect(plan.archives.map((a) => a.file)).toEqual([
      'kubernetes-server-linux-amd64.tar.gz',
      'kubernetes-node-linux-amd64.tar.gz',
      `etcd-${PINNED.etcd.version}-linux-amd64.tar.gz`,
      `cri-dockerd-${PINNED.criDockerd.version}.amd64.tgz`,
    ]);
    expect(plan.archives.some((a) => a.bare)).toBe(false);
  });

  it('holds every member provisioning unpacks from those archives, each made by a recipe', () => {
    // artifacts.tsv of every node of the default (docker) cluster: what install-binaries asks of each archive.
    const p = planCluster(config());
    const built = new Set(plan.recipes.flatMap(binaryNames));
    const byFile = new Map(plan.archives.map((a) => [a.file, new Set(a.members.map((m) => m.path))]));
    const wanted = p.nodes.flatMap((n) => artifactMembers(p, n));
    expect(new Set(wanted.map((m) => basename(m.artifact.url)))).toEqual(new Set(byFile.keys()));
    for (const m of wanted) expect(byFile.get(basename(m.artifact.url)), `${m.member} of ${m.artifact.url}`).toContain(m.member);
    for (const a of plan.archives) for (const m of a.members) expect(built, `${a.file}: ${m.path}`).toContain(m.binary);
    for (const i of plan.images) for (const f of i.files) if ('binary' in f) expect(built, `${i.image}: ${f.path}`).toContain(f.binary);
  });

  it('builds an image archive for each pinned image, named as the plan of an air-gapped cluster names it', () => {
    const p = planCluster(config({ 'binaries.dir': './binaries' }));
    const node = p.nodes.find((n) => n.runsPods)!;
    expect(plan.images.map((i) => [i.key, i.image])).toEqual([
      ['pause', PINNED.images.pause.image],
      ['coredns', PINNED.images.coredns.image],
      ['smoke', PINNED.images.smoke.image],
    ]);
    expect(new Set(plan.images.map((i) => imageArchiveName(i.image)))).toEqual(new Set(imageArchives(p, node).map((a) => a.image.archive)));
  });

  it('builds the kubelet alone with cgo, as upstream does (KUBE_CGO_OVERRIDES_LIST)', () => {
    const cgo = plan.recipes.flatMap((r) => (r.kind === 'go' ? r.builds.filter((b) => b.cgo).flatMap((b) => b.packages.map((p) => p.binary)) : []));
    expect(cgo).toEqual(['kubelet']);
  });

  it('stamps the release into both version packages of every Kubernetes binary (kubectl version reads client-go, the servers component-base)', () => {
    const k8s = goRecipe('kubernetes');
    const stamped = k8s.builds.filter((b) => b.packages.some((p) => p.pkg.startsWith('k8s.io/kubernetes/cmd/')));
    expect(stamped.flatMap((b) => b.packages.map((p) => p.binary)).sort()).toEqual([
      'kube-apiserver',
      'kube-controller-manager',
      'kube-proxy',
      'kube-scheduler',
      'kubectl',
      'kubelet',
    ]);
    for (const b of stamped) {
      for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
        expect(b.ldflags).toContain(`-X ${pkg}.gitVersion=${PINNED.kubernetes.version}`);
        expect(b.ldflags).toContain(`-X ${pkg}.gitMajor=1`);
        expect(b.ldflags).toContain(`-X ${pkg}.gitMinor=${PINNED.kubernetes.version.split('.')[1]}`);
      }
      expect(b.ldflags.slice(0, 2)).toEqual(['-s', '-w']);
      expect(b.tags).toEqual(['selinux', 'notest', 'grpcnotrace']);
    }
    // The wrapper lists each built package as a tool, so go mod tidy keeps what it imports.
    if (k8s.source.kind !== 'wrapper') throw new Error('kubernetes is built from a wrapper module');
    expect(new Set(k8s.source.tools)).toEqual(new Set(k8s.builds.flatMap((b) => b.packages.map((p) => p.pkg))));
    expect(k8s.source.kubernetesStaging).toEqual({ path: 'k8s.io/kubernetes', version: PINNED.kubernetes.version });
  });

  it('takes module versions from the pins: a leading v added where a module needs one, the agnhost VERSION checked', () => {
    const mod = (name: string) => {
      const s = goRecipe(name).source;
      return s.kind === 'module' ? s.module : undefined;
    };
    expect(mod('cri-dockerd')).toEqual({ path: 'github.com/Mirantis/cri-dockerd', version: `v${PINNED.criDockerd.version}` });
    expect(goRecipe('cri-dockerd').builds[0]!.ldflags).toContain(`-X github.com/Mirantis/cri-dockerd/cmd/version.Version=${PINNED.criDockerd.version}`);
    expect(mod('coredns')).toEqual({ path: 'github.com/coredns/coredns', version: imageTag(PINNED.images.coredns.image) });
    expect(goRecipe('kubernetes').expect).toEqual({ file: 'test/images/agnhost/VERSION', content: imageTag(PINNED.images.smoke.image) });
    const etcd = goRecipe('etcd').source;
    expect(etcd.kind === 'wrapper' && etcd.requires.map((r) => r.version)).toEqual([PINNED.etcd.version, PINNED.etcd.version]);
    const pause = recipe('pause');
    expect(pause.kind === 'c' && pause.cflags).toContain(`-DVERSION=v${imageTag(PINNED.images.pause.image)}-0`);
  });

  it('gives go build the flags of the build: -tags only when there are tags, one -ldflags word, -o a directory', () => {
    const [servers, kubelet, agnhost] = goRecipe('kubernetes').builds;
    expect(goBuildArgs(kubelet!, '/w/build-kubelet')).toEqual([
      'build',
      '-mod=readonly',
      '-trimpath',
      '-tags=selinux,notest,grpcnotrace',
      `-ldflags=${kubelet!.ldflags.join(' ')}`,
      '-o',
      '/w/build-kubelet/',
      'k8s.io/kubernetes/cmd/kubelet',
    ]);
    expect(goBuildArgs(agnhost!, '/w/a')).toEqual([
      'build',
      '-mod=readonly',
      '-trimpath',
      '-ldflags=-s -w',
      '-o',
      '/w/a/',
      'k8s.io/kubernetes/test/images/agnhost',
    ]);
    expect(goBuildArgs(servers!, '/w/s').slice(-5)).toEqual(
      ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl'].map((b) => `k8s.io/kubernetes/cmd/${b}`),
    );
  });

  it('refuses runtime: containerd, naming the fix', () => {
    expect(() => binariesPlan(PINNED, 'containerd')).toThrow(
      "runtime: containerd: npm run binaries builds the docker runtime's pieces (cri-dockerd) only; set runtime: docker, or put containerd's and runc's official archives in binaries.dir",
    );
  });
});

describe('names and versions', () => {
  it.each([
    ['registry.k8s.io/coredns/coredns:v1.14.6', 'v1.14.6'],
    ['docker.io/coredns/coredns:1.13.1', '1.13.1'],
    ['registry.k8s.io/pause:3.10.2', '3.10.2'],
    // a registry's port is not a tag
    ['localhost:5000/e2e/agnhost:2.66.1', '2.66.1'],
  ])('imageTag(%s) is %s', (image, tag) => {
    expect(imageTag(image)).toBe(tag);
  });

  it('imageTag refuses an image without a tag (a port does not count)', () => {
    expect(() => imageTag('localhost:5000/pause')).toThrow("image 'localhost:5000/pause' has no tag: pin versions.images as repository:tag");
    expect(() => imageTag('registry.k8s.io/pause')).toThrow(/has no tag/);
  });

  it.each([
    ['go.etcd.io/etcd/server/v3', 'server'],
    ['go.etcd.io/etcd/etcdctl/v3', 'etcdctl'],
    ['k8s.io/kubernetes/cmd/kubelet', 'kubelet'],
    ['k8s.io/kubernetes/test/images/agnhost', 'agnhost'],
    ['github.com/Mirantis/cri-dockerd', 'cri-dockerd'],
    ['example.com/tool/v12', 'tool'],
  ])('go build -o dir/ names %s %s', (pkg, name) => {
    expect(goBinaryName(pkg)).toBe(name);
  });

  it.each([
    ['go1.26.0', true],
    ['go1.26.8', true],
    ['go1.26rc1', true],
    ['go1.27.2', true],
    ['go2.0.0', true],
    ['devel go1.27-6a7b8c9d Mon Jan 5 2026', true],
    ['go1.25.9', false],
    ['go1.3', false],
    ['go0.99', false],
    ['', false],
    ['1.26.0', false],
  ] as const)('goAtLeast(%j, [1, 26]) is %s', (version, ok) => {
    expect(goAtLeast(version, [1, 26])).toBe(ok);
  });
});

describe('recipe cache keys', () => {
  const go = 'go1.26.0';
  const k8s = goRecipe('kubernetes');
  const edited = (edit: (r: GoRecipe) => void): Recipe => {
    const r = structuredClone(k8s);
    edit(r);
    return r;
  };

  it('are stable: the same recipe (another copy of it, another call of the plan) has the same key', () => {
    const key = recipeKey(k8s, go);
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(recipeKey(structuredClone(k8s), go)).toBe(key);
    expect(recipeKey(binariesPlan(PINNED, 'docker').recipes[0]!, go)).toBe(key);
    expect(new Set(plan.recipes.map((r) => recipeKey(r, go))).size).toBe(plan.recipes.length);
  });

  it.each<[string, (r: GoRecipe) => void]>([
    ['cgo turned on for a build', (r) => (r.builds[0]!.cgo = true)],
    ['a tag added', (r) => r.builds[0]!.tags.push('providerless')],
    ['an ldflag changed', (r) => (r.builds[1]!.ldflags = r.builds[1]!.ldflags.map((f) => f.replace('gitVersion=v', 'gitVersion=x')))],
    ['a package added', (r) => r.builds[0]!.packages.push({ pkg: 'k8s.io/kubernetes/cmd/kubeadm', binary: 'kubeadm' })],
    ['another version required', (r) => r.source.kind === 'wrapper' && (r.source.requires[0]!.version = 'v1.37.2')],
  ])('change when a flag changes: %s', (_, edit) => {
    expect(recipeKey(edited(edit), go)).not.toBe(recipeKey(k8s, go));
  });

  it('change with the Go toolchain', () => {
    expect(recipeKey(k8s, 'go1.26.1')).not.toBe(recipeKey(k8s, go));
  });
});

/** A manifest of a build of `v`, listing `archives` (file names) and `images` (keys), with made-up digests. */
function manifestFor(v: Versions, archives: string[], images: (keyof Versions['images'])[]): Omit<BinariesManifest, 'format'> {
  const hex = (s: string) => s.padEnd(64, '0');
  return {
    builtFor: builtFor(v),
    go: 'go1.26.0',
    archives: Object.fromEntries(archives.map((f, i) => [f, { sha256: hex(`a${i}`), key: `k${i}` }])),
    images: Object.fromEntries(
      images.map((k, i) => [
        k,
        { image: v.images[k].image, archive: imageArchiveName(v.images[k].image), id: `sha256:${hex(`b${i}`)}`, sha256: hex(`c${i}`), key: `i${i}` },
      ]),
    ) as BinariesManifest['images'],
  };
}

describe('built checksums in place of the pinned ones', () => {
  const bumped: Versions = {
    ...PINNED,
    kubernetes: { ...PINNED.kubernetes, version: 'v1.37.2' },
    images: { ...PINNED.images, pause: { image: 'registry.k8s.io/pause:3.11' } },
  };

  it('versionDrift names each pin the build differs from, as key: built → pinned', () => {
    expect(versionDrift(builtFor(PINNED), builtFor(PINNED))).toEqual([]);
    expect(versionDrift(builtFor(PINNED), builtFor(bumped))).toEqual([
      `versions.kubernetes.version: built ${PINNED.kubernetes.version}, pinned v1.37.2`,
      `versions.images.pause.image: built ${PINNED.images.pause.image}, pinned registry.k8s.io/pause:3.11`,
    ]);
  });

  it('only the archives and images the manifest lists change; the image digest is dropped and the built ID pinned', () => {
    const before = structuredClone(PINNED);
    const server = basename(PINNED.kubernetes.server.url);
    const etcd = basename(PINNED.etcd.archive.url);
    const m = { format: 1, ...manifestFor(PINNED, [server, etcd], ['pause']) };
    const v = withBuiltChecksums(PINNED, m);
    expect(v.kubernetes.server).toEqual({ url: PINNED.kubernetes.server.url, checksum: `sha256:${m.archives[server]!.sha256}` });
    expect(v.etcd.archive).toEqual({ url: PINNED.etcd.archive.url, checksum: `sha256:${m.archives[etcd]!.sha256}` });
    // Not in the manifest: the official checksums (a binaries.dir may mix built and downloaded archives).
    expect(v.kubernetes.node).toEqual(PINNED.kubernetes.node);
    expect(v.criDockerd).toEqual(PINNED.criDockerd);
    expect(v.containerd).toEqual(PINNED.containerd);
    expect(v.images.pause).toEqual({ image: PINNED.images.pause.image, id: m.images.pause.id });
    expect(v.images.coredns).toEqual(PINNED.images.coredns);
    expect(v.images.smoke).toEqual(PINNED.images.smoke);
    expect(v.kubernetes.version).toBe(PINNED.kubernetes.version);
    // The pins are shared by every config: a render must never change them.
    expect(PINNED).toEqual(before);
  });

  it('an image entry built under another tag does not replace the pinned image', () => {
    const m = { format: 1, ...manifestFor(PINNED, [], ['coredns']) };
    m.images.coredns = { ...m.images.coredns, image: 'registry.k8s.io/coredns/coredns:v1.14.5' };
    expect(withBuiltChecksums(PINNED, m).images.coredns).toEqual(PINNED.images.coredns);
  });
});

describe('a cluster whose binaries.dir holds kube-ipsec-binaries.json', () => {
  /** A scratch dir with a cluster.yaml path (never read) and its binaries.dir `./built`, holding `manifest` if given. */
  function scratch(tag: string, manifest?: Omit<BinariesManifest, 'format'>) {
    const base = join(dir, tag);
    const built = join(base, 'built');
    mkdirSync(built, { recursive: true });
    if (manifest) writeManifest(built, manifest);
    return { configFile: join(base, 'cluster.yaml'), built };
  }
  const airGapped = () => config({ 'binaries.dir': './built' });
  const everything = (v: Versions) =>
    manifestFor(
      v,
      [v.kubernetes.server.url, v.kubernetes.node.url, v.etcd.archive.url, v.criDockerd.archive.url].map((u) => basename(u)),
      ['coredns', 'pause', 'smoke'],
    );

  it('takes the built checksums and image IDs (binaries.dir relative to cluster.yaml), which the render then pins', () => {
    const manifest = everything(PINNED);
    const s = scratch('applies', manifest);
    const c = applyBuiltBinaries(airGapped(), s.configFile);
    const builtSum = (url: string) => `sha256:${manifest.archives[basename(url)]!.sha256}`;
    expect(c.versions.kubernetes.server.checksum).toBe(builtSum(PINNED.kubernetes.server.url));
    expect(c.versions.criDockerd.archive.checksum).toBe(builtSum(PINNED.criDockerd.archive.url));
    expect(c.versions.images.smoke).toEqual({ image: PINNED.images.smoke.image, id: manifest.images.smoke.id });
    // What artifacts.tsv will carry to the nodes: install-binaries verifies the built files by these.
    const p = planCluster(c);
    const master = p.nodes.find((n) => n.role === 'master')!;
    const minion = p.nodes.find((n) => n.runsPods)!;
    const sums = (node: typeof master) => new Set(artifactMembers(p, node).map((m) => m.artifact.checksum));
    expect(sums(master)).toEqual(new Set([builtSum(PINNED.kubernetes.server.url), builtSum(PINNED.etcd.archive.url)]));
    expect(sums(minion)).toEqual(new Set([builtSum(PINNED.kubernetes.node.url), builtSum(PINNED.criDockerd.archive.url)]));
    expect(imageArchives(p, minion).map((a) => [a.image.ref, a.image.id])).toEqual([
      [PINNED.images.pause.image, manifest.images.pause.id],
      [PINNED.images.coredns.image, manifest.images.coredns.id],
      [PINNED.images.smoke.image, manifest.images.smoke.id],
    ]);
  });

  it('refuses a build of other versions with a ConfigError naming binaries.dir, each version and the fix', () => {
    const older: Versions = { ...PINNED, etcd: { ...PINNED.etcd, version: 'v3.6.5' } };
    const s = scratch('drift', everything(older));
    let err: unknown;
    try {
      applyBuiltBinaries(airGapped(), s.configFile);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues).toEqual([
      {
        path: 'binaries.dir',
        value: './built',
        problem: `holds binaries that npm run binaries built for other versions than this file pins (versions.etcd.version: built v3.6.5, pinned ${PINNED.etcd.version})`,
        fix: `run npm run binaries again, or remove ${join('built', MANIFEST_FILE)} to install downloaded archives from there`,
      },
    ]);
    expect((err as ConfigError).message).toContain(`${s.configFile}: binaries.dir = "./built": holds binaries`);
  });

  it('is refused when its manifest has another format, naming the fix', () => {
    const s = scratch('format');
    writeFileSync(join(s.built, MANIFEST_FILE), JSON.stringify({ format: 2 }));
    const refusal = (() => {
      try {
        applyBuiltBinaries(airGapped(), s.configFile);
      } catch (err) {
        return err;
      }
    })();
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as ConfigError).issues).toEqual([
      {
        path: 'binaries.dir',
        value: expect.any(String),
        problem: `${join(s.built, MANIFEST_FILE)} has format 2, not the 1 this kube-ipsec reads`,
        fix: 'run npm run binaries again, or remove that file',
      },
    ]);
    // A truncated file is the same kind of refusal, not a stack trace.
    writeFileSync(join(s.built, MANIFEST_FILE), '{"format": 1, "builtFor"');
    expect(() => applyBuiltBinaries(airGapped(), s.configFile)).toThrow(/binaries\.dir = .*kube-ipsec-binaries\.json is not JSON/);
  });

  it('a cluster without binaries.dir, or whose binaries.dir has no manifest, is unchanged', () => {
    const s = scratch('none', everything(PINNED));
    const downloads = config();
    expect(downloads.binaries.dir).toBeUndefined();
    expect(applyBuiltBinaries(downloads, s.configFile)).toBe(downloads);
    const empty = scratch('empty');
    const official = airGapped();
    expect(applyBuiltBinaries(official, empty.configFile)).toBe(official);
  });
});
