// A container image made from built binaries, written as the archive `docker save` writes
// (manifest.json, the config named by its sha256, one layer), which provisioning verifies and
// kube-ipsec-images.service loads with `docker load`. One layer, no base image: the binaries
// are static. The layer is gzipped (docker load detects it; install-binaries hashes it
// gunzipped against the config's diff_ids) to keep the upload to each node small.
// Format: https://github.com/moby/docker-image-spec (v1.2) and moby's image/tarexport/save.go.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Runner } from '../run.ts';
import { REPRODUCIBLE_TAR, sha256File } from './pack.ts';
import type { ImageSpec } from './recipes.ts';

export interface WrittenImage {
  /** The image ID: sha256 of its config. */
  id: string;
  /** sha256 of the archive file. */
  sha256: string;
}

/** The image config (docker-image-spec v1.2) of a one-layer image whose tar hashes to `diffId`. */
export function imageConfig(spec: ImageSpec, diffId: string): string {
  const config = {
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Entrypoint: spec.entrypoint,
      ...(spec.cmd && { Cmd: spec.cmd }),
      ...(spec.user && { User: spec.user }),
      ...(spec.ports && { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [p, {}])) }),
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: `kube-ipsec binaries: ${spec.files.map((f) => f.path).join(' ')}` }],
  };
  return JSON.stringify(config);
}

export async function writeImageArchive(
  runner: Runner,
  spec: ImageSpec,
  binaries: ReadonlyMap<string, string>,
  dest: string,
  workDir: string,
): Promise<WrittenImage> {
  const stage = join(workDir, `image-${spec.key}`);
  rmSync(stage, { recursive: true, force: true });
  const rootfs = join(stage, 'rootfs');
  const out = join(stage, 'out');
  try {
    for (const f of spec.files) {
      const source = 'binary' in f ? binaries.get(f.binary) : f.hostFile;
      if (!source) throw new Error(`internal: image ${spec.image} needs ${'binary' in f ? f.binary : ''}, which no recipe built`);
      mkdirSync(join(rootfs, dirname(f.path)), { recursive: true });
      copyFileSync(source, join(rootfs, f.path));
    }
    for (const [path, target] of Object.entries(spec.links)) {
      mkdirSync(join(rootfs, dirname(path)), { recursive: true });
      symlinkSync(target, join(rootfs, path));
    }
    mkdirSync(out);
    const layerTar = join(stage, 'layer.tar');
    await runner.run(['tar', ...REPRODUCIBLE_TAR, '--mode=u=rwX,go=rX', '-C', rootfs, '-cf', layerTar, '.'], { timeoutMs: 600_000 });
    const diffId = `sha256:${await sha256File(layerTar)}`;
    const layerDir = diffId.slice('sha256:'.length);
    mkdirSync(join(out, layerDir));
    await runner.run(['sh', '-c', 'gzip -n -c "$1" > "$2"', 'sh', layerTar, join(out, layerDir, 'layer.tar')], { timeoutMs: 600_000 });
    const config = imageConfig(spec, diffId);
    const id = createHash('sha256').update(config).digest('hex');
    writeFileSync(join(out, `${id}.json`), config);
    writeFileSync(join(out, 'manifest.json'), JSON.stringify([{ Config: `${id}.json`, RepoTags: [spec.image], Layers: [`${layerDir}/layer.tar`] }]));
    const tmp = `${dest}.tmp`;
    await runner.run(['tar', ...REPRODUCIBLE_TAR, '--mode=u=rwX,go=rX', '-C', out, '-cf', tmp, 'manifest.json', `${id}.json`, layerDir], {
      timeoutMs: 600_000,
    });
    renameSync(tmp, dest);
    return { id: `sha256:${id}`, sha256: await sha256File(dest) };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
