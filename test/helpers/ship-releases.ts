// Release archives for tests: the pinned URLs' file names, each holding the members the
// nodes install (tiny scripts instead of the real binaries), and a cluster.yaml fragment
// that pins their real checksums and points binaries.dir at them. provision/ then does
// exactly what it does with the real releases: air-gapped lookup, checksum, unpacking.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { PINNED } from '../../src/config/pins.ts';
import type { Versions } from '../../src/config/pins.ts';
import { imageArchiveName } from '../../src/plan/plan.ts';

/** Members of each pinned archive; an empty list is a bare binary (runc). */
const MEMBERS: { url: string; members: string[] }[] = [
  {
    url: PINNED.kubernetes.server.url,
    members: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'].map((b) => `kubernetes/server/bin/${b}`),
  },
  { url: PINNED.kubernetes.node.url, members: ['kubelet', 'kube-proxy', 'kubectl'].map((b) => `kubernetes/node/bin/${b}`) },
  { url: PINNED.etcd.archive.url, members: ['etcd', 'etcdctl'].map((b) => `etcd-${PINNED.etcd.version}-linux-amd64/${b}`) },
  { url: PINNED.criDockerd.archive.url, members: ['cri-dockerd/cri-dockerd'] },
  { url: PINNED.containerd.archive.url, members: ['containerd', 'containerd-shim-runc-v2', 'ctr'].map((b) => `bin/${b}`) },
  { url: PINNED.containerd.runc.url, members: [] },
];

export interface TestReleases {
  dir: string;
  /** `versions:` and `binaries:` for cluster.yaml. */
  yaml: string;
  /** File name → sha256 of each archive. */
  checksums: Map<string, string>;
}

/** Builds the archives in `dir`; `build` changes the binaries' content (a version bump). */
export function makeReleases(dir: string, build = 'test-1'): TestReleases {
  mkdirSync(dir, { recursive: true });
  const checksums = new Map<string, string>();
  for (const { url, members } of MEMBERS) {
    const name = basename(url);
    if (!members.length) {
      writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} ${build}"\n`, { mode: 0o755 });
    } else {
      const work = mkdtempSync(join(tmpdir(), 'kube-ipsec-release-'));
      try {
        for (const m of members) {
          mkdirSync(join(work, dirname(m)), { recursive: true });
          writeFileSync(join(work, m), `#!/bin/sh\necho "${basename(m)} ${build}"\n`, { mode: 0o755 });
        }
        const r = spawnSync('tar', ['-czf', join(dir, name), '-C', work, ...members], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
    checksums.set(
      name,
      createHash('sha256')
        .update(readFileSync(join(dir, name)))
        .digest('hex'),
    );
  }
  const images = Object.fromEntries(
    Object.entries(PINNED.images).map(([key, pin]) => [
      key,
      { image: pin.image, id: dockerArchive(join(dir, imageArchiveName(pin.image)), pin.image, `${key} ${build}`) },
    ]),
  ) as Versions['images'];
  for (const pin of Object.values(images)) checksums.set(imageArchiveName(pin.image), pin.id!.slice('sha256:'.length));
  const artifact = (url: string) => ({ url, checksum: `sha256:${checksums.get(basename(url))}` });
  const versions: Partial<Versions> = {
    kubernetes: { version: PINNED.kubernetes.version, server: artifact(PINNED.kubernetes.server.url), node: artifact(PINNED.kubernetes.node.url) },
    etcd: { version: PINNED.etcd.version, archive: artifact(PINNED.etcd.archive.url) },
    criDockerd: { version: PINNED.criDockerd.version, archive: artifact(PINNED.criDockerd.archive.url) },
    containerd: { version: PINNED.containerd.version, archive: artifact(PINNED.containerd.archive.url), runc: artifact(PINNED.containerd.runc.url) },
    images,
  };
  return { dir, yaml: stringify({ versions, binaries: { dir } }), checksums };
}

/**
 * A docker archive (the layout `docker save` writes) of `image`: one layer holding a file with
 * `content`, its config and manifest.json. Returns the image ID (sha256 of the config).
 */
export function dockerArchive(file: string, image: string, content: string): string {
  const work = mkdtempSync(join(tmpdir(), 'kube-ipsec-image-'));
  try {
    mkdirSync(join(work, 'layer'));
    writeFileSync(join(work, 'layer', 'hello'), `${content}\n`);
    const layerTar = join(work, 'layer.tar');
    tar(['--mtime=@0', '--owner=0', '--group=0', '-cf', layerTar, '-C', join(work, 'layer'), 'hello']);
    const diffId = createHash('sha256').update(readFileSync(layerTar)).digest('hex');
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/hello'] },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
    });
    const id = createHash('sha256').update(config).digest('hex');
    mkdirSync(join(work, 'archive', diffId), { recursive: true });
    writeFileSync(join(work, 'archive', `${id}.json`), config);
    writeFileSync(join(work, 'archive', diffId, 'layer.tar'), readFileSync(layerTar));
    writeFileSync(join(work, 'archive', 'manifest.json'), JSON.stringify([{ Config: `${id}.json`, RepoTags: [image], Layers: [`${diffId}/layer.tar`] }]));
    tar(['-cf', file, '-C', join(work, 'archive'), 'manifest.json', `${id}.json`, `${diffId}/layer.tar`]);
    return `sha256:${id}`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function tar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
}
