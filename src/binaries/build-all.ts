// `npm run binaries` end to end: build every recipe (cached), pack the archives and write the
// image archives into the binaries dir, then record them in kube-ipsec-binaries.json, last, so
// that a manifest never names a file that is not complete. A file already there, packed from
// the same build and with the recorded sha256, is left as it is.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Versions } from '../config/pins.ts';
import type { Runner } from '../run.ts';
import { buildRecipe, recipeKey, removeAbandonedWork, type Toolchain } from './build.ts';
import { writeImageArchive } from './image-archive.ts';
import { builtFor, readManifest, writeManifest, type BinariesManifest } from './manifest.ts';
import { packArchive, sha256File } from './pack.ts';
import { binariesPlan, type ImageKey, type Recipe } from './recipes.ts';
import { imageArchiveName } from '../plan/plan.ts';

export const DEFAULT_CACHE_DIR = '/var/cache/kube-ipsec/builds';

/** Bumped when the archives' or images' layout changes, so that packed files are redone. */
const PACK_REVISION = 1;

export interface BuildBinariesOptions {
  versions: Versions;
  runtime: 'docker' | 'containerd';
  dir: string;
  cacheDir: string;
  go: string;
  goVersion: string;
  runner: Runner;
  log: (line: string) => void;
}

export interface BuildBinariesResult {
  written: string[];
  unchanged: number;
  manifest: BinariesManifest;
}

export async function buildBinaries(o: BuildBinariesOptions): Promise<BuildBinariesResult> {
  const plan = binariesPlan(o.versions, o.runtime);
  const tc: Toolchain = { runner: o.runner, go: o.go, goVersion: o.goVersion, cacheDir: o.cacheDir, log: o.log };
  removeAbandonedWork(o.cacheDir);
  const binaries = new Map<string, string>();
  const keyOf = new Map<string, string>();
  for (const recipe of plan.recipes) {
    const built = await buildRecipe(recipe, tc);
    o.log(built.seconds === undefined ? `${recipe.name}: cached` : `${recipe.name}: built in ${built.seconds.toFixed(0)} s`);
    for (const [name, path] of built.binaries) {
      binaries.set(name, path);
      keyOf.set(name, recipeKey(recipe as Recipe, o.goVersion));
    }
  }
  const previous = readManifest(o.dir);
  const packKey = (names: string[], extra: unknown) =>
    createHash('sha256')
      .update(JSON.stringify([PACK_REVISION, names.map((n) => keyOf.get(n)), extra]))
      .digest('hex')
      .slice(0, 16);
  const upToDate = async (file: string, entry: { sha256: string; key: string } | undefined, key: string) =>
    entry !== undefined && entry.key === key && existsSync(file) && (await sha256File(file)) === entry.sha256;

  mkdirSync(o.dir, { recursive: true });
  const work = mkdtempSync(join(o.cacheDir, '.work-pack-'));
  const written: string[] = [];
  let unchanged = 0;
  const archives: BinariesManifest['archives'] = {};
  const images = {} as BinariesManifest['images'];
  try {
    for (const spec of plan.archives) {
      const file = join(o.dir, spec.file);
      const key = packKey(
        spec.members.map((m) => m.binary),
        spec,
      );
      const before = previous?.archives[spec.file];
      if (await upToDate(file, before, key)) {
        archives[spec.file] = before!;
        unchanged++;
        continue;
      }
      o.log(`${spec.file}: packing ${spec.members.map((m) => m.path).join(', ')}`);
      archives[spec.file] = { sha256: await packArchive(o.runner, spec, binaries, file, work), key };
      written.push(spec.file);
    }
    for (const spec of plan.images) {
      const archive = imageArchiveName(spec.image);
      const file = join(o.dir, archive);
      // Host files (busybox-static) by content: an upgraded package makes a new image.
      const hostFiles = await Promise.all(spec.files.flatMap((f) => ('hostFile' in f ? [sha256File(f.hostFile)] : [])));
      const key = packKey(
        spec.files.flatMap((f) => ('binary' in f ? [f.binary] : [])),
        { spec, hostFiles },
      );
      const before = previous?.images[spec.key as ImageKey];
      if (before && before.archive === archive && (await upToDate(file, before, key))) {
        images[spec.key] = before;
        unchanged++;
        continue;
      }
      o.log(`${archive}: image ${spec.image}`);
      const w = await writeImageArchive(o.runner, spec, binaries, file, work);
      images[spec.key] = { image: spec.image, archive, id: w.id, sha256: w.sha256, key };
      written.push(archive);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const manifest = { builtFor: builtFor(o.versions), go: o.goVersion, archives, images };
  writeManifest(o.dir, manifest);
  return { written, unchanged, manifest: { format: 1, ...manifest } };
}
