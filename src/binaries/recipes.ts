// What `npm run binaries` builds for a cluster's pinned versions, and how, as data: which Go
// modules (or C file), with which flags, into which binaries; then how those binaries are laid
// out in archives named and shaped like the official release archives, and in container images.
// Pure: build.ts, pack.ts and image-archive.ts carry it out. Every flag follows the upstream
// build of the same release (cited at each recipe), so the binaries are those a release has,
// rebuilt here from the same source.
import { basename } from 'node:path';
import type { Versions } from '../config/pins.ts';
import type { ModuleVersion } from './gomod.ts';

/** One `go build`: packages of the source, each to a binary name. */
export interface GoBuild {
  packages: { pkg: string; binary: string }[];
  cgo: boolean;
  tags: string[];
  ldflags: string[];
}

type GoSource =
  /** A generated wrapper module that requires `requires` (k8s.io/kubernetes: with its staging modules replaced). */
  | { kind: 'wrapper'; requires: ModuleVersion[]; kubernetesStaging?: ModuleVersion; tools: string[]; go: string }
  /** The module's own tree in the module cache (its go.mod and go.sum): its replace lines hold. */
  | { kind: 'module'; module: ModuleVersion };

export interface GoRecipe {
  kind: 'go';
  name: string;
  source: GoSource;
  builds: GoBuild[];
  /** A file of the source whose content must be this (the agnhost VERSION a release's test images carry). */
  expect?: { file: string; content: string };
}

/** A static C program from a module's tree (the pause container). */
export interface CRecipe {
  kind: 'c';
  name: string;
  module: ModuleVersion;
  file: string;
  binary: string;
  cflags: string[];
}

export type Recipe = GoRecipe | CRecipe;

/** An archive in the shape of the official one, named as its URL names it. */
export interface ArchiveSpec {
  file: string;
  /** member path in the archive → binary name among the built ones. */
  members: { path: string; binary: string }[];
  /** A single binary served bare (runc), not an archive. */
  bare?: boolean;
}

export type ImageKey = keyof Versions['images'];

export interface ImageSpec {
  key: ImageKey;
  /** repository:tag the archive carries (versions.images.<key>.image). */
  image: string;
  /** Files of the image's one layer: built binaries, or files of this host (busybox-static). */
  files: ({ path: string; binary: string } | { path: string; hostFile: string })[];
  /** Symlinks of the layer: path → target. */
  links: Record<string, string>;
  entrypoint: string[];
  cmd?: string[];
  user?: string;
  ports?: string[];
}

export interface BinariesPlan {
  recipes: Recipe[];
  archives: ArchiveSpec[];
  images: ImageSpec[];
}

const K8S_TAGS = ['selinux', 'notest', 'grpcnotrace'];

/** registry.k8s.io/coredns/coredns:v1.14.6 → v1.14.6; docker.io/coredns/coredns:1.13.1 → 1.13.1 */
export function imageTag(image: string): string {
  const tag = image.slice(image.lastIndexOf('/') + 1).split(':')[1];
  if (!tag) throw new Error(`image '${image}' has no tag: pin versions.images as repository:tag`);
  return tag;
}

const moduleVersion = (v: string) => (v.startsWith('v') ? v : `v${v}`);

/** BusyBox applets the agnhost image carries for `kubectl exec` probes (upstream's agnhost has a Debian base). */
const AGNHOST_APPLETS = ['sh', 'cat', 'echo', 'env', 'hostname', 'ip', 'ls', 'nc', 'nslookup', 'ping', 'sleep', 'timeout', 'wget'];

export function binariesPlan(versions: Versions, runtime: 'docker' | 'containerd'): BinariesPlan {
  if (runtime !== 'docker') {
    throw new Error(
      "runtime: containerd: npm run binaries builds the docker runtime's pieces (cri-dockerd) only; set runtime: docker, or put containerd's and runc's official archives in binaries.dir",
    );
  }
  const k8s = versions.kubernetes.version;
  const k8sModule = { path: 'k8s.io/kubernetes', version: k8s };
  // hack/lib/golang.sh (kube::golang::build_binaries): -trimpath, -ldflags "-s -w" plus the
  // version stamps of hack/lib/version.sh, tags selinux,notest,grpcnotrace; CGO_ENABLED=0
  // except for the kubelet (KUBE_CGO_OVERRIDES_LIST).
  const stamp = [
    ...['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((p) => [
      `-X ${p}.gitVersion=${k8s}`,
      `-X ${p}.gitMajor=1`,
      `-X ${p}.gitMinor=${k8s.split('.')[1]}`,
      `-X ${p}.buildDate=1970-01-01T00:00:00Z`,
    ]),
  ];
  const k8sLdflags = ['-s', '-w', ...stamp];
  const cmd = (b: string) => ({ pkg: `k8s.io/kubernetes/cmd/${b}`, binary: b });
  const agnhostVersion = imageTag(versions.images.smoke.image);
  const kubernetes: GoRecipe = {
    kind: 'go',
    name: 'kubernetes',
    source: {
      kind: 'wrapper',
      requires: [k8sModule],
      kubernetesStaging: k8sModule,
      tools: [
        ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl', 'kubelet'].map((b) => cmd(b).pkg),
        'k8s.io/kubernetes/test/images/agnhost',
      ],
      go: '1.26.0',
    },
    builds: [
      {
        packages: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl'].map(cmd),
        cgo: false,
        tags: K8S_TAGS,
        ldflags: k8sLdflags,
      },
      { packages: [cmd('kubelet')], cgo: true, tags: K8S_TAGS, ldflags: k8sLdflags },
      // test/images/agnhost/Makefile: CGO_ENABLED=0, -ldflags "-s -w"
      { packages: [{ pkg: 'k8s.io/kubernetes/test/images/agnhost', binary: 'agnhost' }], cgo: false, tags: [], ldflags: ['-s', '-w'] },
    ],
    expect: { file: 'test/images/agnhost/VERSION', content: agnhostVersion },
  };
  // etcd's scripts/build_lib.sh: CGO_ENABLED=0, -trimpath, the git SHA stamped (none here).
  const etcdVersion = versions.etcd.version;
  const etcd: GoRecipe = {
    kind: 'go',
    name: 'etcd',
    source: {
      kind: 'wrapper',
      requires: ['server', 'etcdctl'].map((m) => ({ path: `go.etcd.io/etcd/${m}/v3`, version: etcdVersion })),
      tools: ['go.etcd.io/etcd/server/v3', 'go.etcd.io/etcd/etcdctl/v3'],
      go: '1.24',
    },
    builds: [
      {
        packages: [
          { pkg: 'go.etcd.io/etcd/server/v3', binary: 'etcd' },
          { pkg: 'go.etcd.io/etcd/etcdctl/v3', binary: 'etcdctl' },
        ],
        cgo: false,
        tags: [],
        ldflags: ['-s', '-w'],
      },
    ],
  };
  // cri-dockerd's Makefile and packaging/static/Makefile: its own tree (for its replace block),
  // CGO_ENABLED=0, -trimpath, the version stamped in cmd/version.
  const criVersion = versions.criDockerd.version;
  const criDockerd: GoRecipe = {
    kind: 'go',
    name: 'cri-dockerd',
    source: { kind: 'module', module: { path: 'github.com/Mirantis/cri-dockerd', version: moduleVersion(criVersion) } },
    builds: [
      {
        packages: [{ pkg: '.', binary: 'cri-dockerd' }],
        cgo: false,
        tags: [],
        ldflags: ['-s', '-w', `-X github.com/Mirantis/cri-dockerd/cmd/version.Version=${criVersion.replace(/^v/, '')}`],
      },
    ],
  };
  // CoreDNS's Makefile: its own tree, CGO_ENABLED=0, -ldflags "-s -w".
  const corednsVersion = moduleVersion(imageTag(versions.images.coredns.image));
  const coredns: GoRecipe = {
    kind: 'go',
    name: 'coredns',
    source: { kind: 'module', module: { path: 'github.com/coredns/coredns', version: corednsVersion } },
    builds: [{ packages: [{ pkg: '.', binary: 'coredns' }], cgo: false, tags: [], ldflags: ['-s', '-w'] }],
  };
  // build/pause/Makefile: $(CC) -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)
  const pauseVersion = imageTag(versions.images.pause.image);
  const pause: CRecipe = {
    kind: 'c',
    name: 'pause',
    module: k8sModule,
    file: 'build/pause/linux/pause.c',
    binary: 'pause',
    cflags: ['-Os', '-Wall', '-Werror', '-static', `-DVERSION=v${pauseVersion}-0`],
  };

  const server = versions.kubernetes.server.url;
  const node = versions.kubernetes.node.url;
  const etcdDir = `etcd-${etcdVersion}-linux-amd64`;
  const archives: ArchiveSpec[] = [
    {
      file: basename(server),
      members: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'].map((b) => ({ path: `kubernetes/server/bin/${b}`, binary: b })),
    },
    { file: basename(node), members: ['kubelet', 'kube-proxy', 'kubectl'].map((b) => ({ path: `kubernetes/node/bin/${b}`, binary: b })) },
    { file: basename(versions.etcd.archive.url), members: ['etcd', 'etcdctl'].map((b) => ({ path: `${etcdDir}/${b}`, binary: b })) },
    { file: basename(versions.criDockerd.archive.url), members: [{ path: 'cri-dockerd/cri-dockerd', binary: 'cri-dockerd' }] },
  ];
  const images: ImageSpec[] = [
    // build/pause/Dockerfile_linux: FROM scratch, ADD pause, USER 65535:65535, ENTRYPOINT /pause
    { key: 'pause', image: versions.images.pause.image, files: [{ path: 'pause', binary: 'pause' }], links: {}, entrypoint: ['/pause'], user: '65535:65535' },
    // coredns' Dockerfile: the binary on a distroless base, ENTRYPOINT /coredns, EXPOSE 53 53/udp
    {
      key: 'coredns',
      image: versions.images.coredns.image,
      files: [{ path: 'coredns', binary: 'coredns' }],
      links: {},
      entrypoint: ['/coredns'],
      ports: ['53/tcp', '53/udp'],
    },
    // test/images/agnhost/Dockerfile: ENTRYPOINT ["/agnhost"], CMD ["pause"]; its Debian base's
    // shell tools (sh, wget, timeout, nslookup) come from Debian's busybox-static here.
    {
      key: 'smoke',
      image: versions.images.smoke.image,
      files: [
        { path: 'agnhost', binary: 'agnhost' },
        { path: 'bin/busybox', hostFile: '/bin/busybox' },
      ],
      links: Object.fromEntries(AGNHOST_APPLETS.map((a) => [`bin/${a}`, 'busybox'])),
      entrypoint: ['/agnhost'],
      cmd: ['pause'],
    },
  ];
  return { recipes: [kubernetes, etcd, criDockerd, coredns, pause], archives, images };
}
