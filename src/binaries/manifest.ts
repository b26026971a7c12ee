// kube-ipsec-binaries.json: what `npm run binaries` put in a binaries.dir, for which pinned
// versions, with the sha256 of each archive and the ID of each image. The render takes those
// in place of the official downloads' checksums (which a build from source cannot match), so
// provisioning verifies every built file exactly as it verifies a download. A manifest built
// for other versions than cluster.yaml pins is refused, not half used.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError } from '../config/errors.ts';
import type { ClusterConfig } from '../config/defaults.ts';
import type { Artifact, Versions } from '../config/pins.ts';
import type { ImageKey } from './recipes.ts';

export const MANIFEST_FILE = 'kube-ipsec-binaries.json';
const FORMAT = 1;

/** The versions a binaries.dir was built for: a change to any of them needs a new build. */
export interface BuiltFor {
  kubernetes: string;
  etcd: string;
  criDockerd: string;
  images: Record<ImageKey, string>;
}

export interface BinariesManifest {
  format: number;
  builtFor: BuiltFor;
  /** Go that built them (`go version`). */
  go: string;
  /** archive file name → its sha256 and the recipe key it was packed from. */
  archives: Record<string, { sha256: string; key: string }>;
  images: Record<ImageKey, { image: string; archive: string; id: string; sha256: string; key: string }>;
}

export function builtFor(v: Versions): BuiltFor {
  return {
    kubernetes: v.kubernetes.version,
    etcd: v.etcd.version,
    criDockerd: v.criDockerd.version,
    images: { coredns: v.images.coredns.image, pause: v.images.pause.image, smoke: v.images.smoke.image },
  };
}

export function readManifest(dir: string): BinariesManifest | undefined {
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return undefined;
  let m: BinariesManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as BinariesManifest;
  } catch (err) {
    throw new ManifestError(file, `is not JSON (${(err as Error).message}): an interrupted write, or not written by npm run binaries`);
  }
  if (m.format !== FORMAT) throw new ManifestError(file, `has format ${JSON.stringify(m.format)}, not the ${FORMAT} this kube-ipsec reads`);
  return m;
}

/** A kube-ipsec-binaries.json that cannot be used. */
class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file} ${problem}: run npm run binaries again, or remove it`);
    this.name = 'ManifestError';
  }
}

export function writeManifest(dir: string, m: Omit<BinariesManifest, 'format'>): void {
  const file = join(dir, MANIFEST_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ format: FORMAT, ...m }, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** What differs between the versions a manifest was built for and those pinned, as `key: built → pinned`. */
export function versionDrift(built: BuiltFor, pinned: BuiltFor): string[] {
  const flat = (b: BuiltFor): Record<string, string> => ({
    'versions.kubernetes.version': b.kubernetes,
    'versions.etcd.version': b.etcd,
    'versions.criDockerd.version': b.criDockerd,
    ...Object.fromEntries(Object.entries(b.images).map(([k, v]) => [`versions.images.${k}.image`, v])),
  });
  const a = flat(built);
  const b = flat(pinned);
  return Object.keys(b)
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}: built ${a[k] ?? '(none)'}, pinned ${b[k]}`);
}

/**
 * The versions with the built files' checksums and image IDs in place of the pinned ones. Only
 * archives and images the manifest lists change; the rest keep their official checksums (a
 * binaries.dir may mix built and downloaded archives).
 */
export function withBuiltChecksums(v: Versions, m: BinariesManifest): Versions {
  const built = (a: Artifact): Artifact => {
    const entry = m.archives[basename(a.url)];
    return entry ? { ...a, checksum: `sha256:${entry.sha256}` } : a;
  };
  const image = (key: ImageKey) => {
    const { digest: _registryDigest, ...pin } = v.images[key];
    const entry = m.images[key];
    // The registry's digest names the upstream image, not this build of it: a node with the
    // archive loads it by tag, and the pinned ID is the built one.
    return entry && entry.image === pin.image ? { ...pin, id: entry.id } : v.images[key];
  };
  return {
    ...v,
    kubernetes: { ...v.kubernetes, server: built(v.kubernetes.server), node: built(v.kubernetes.node) },
    etcd: { ...v.etcd, archive: built(v.etcd.archive) },
    criDockerd: { ...v.criDockerd, archive: built(v.criDockerd.archive) },
    images: { coredns: image('coredns'), pause: image('pause'), smoke: image('smoke') },
  };
}

/**
 * A cluster whose binaries.dir holds a kube-ipsec-binaries.json: its versions take the built
 * checksums (a relative binaries.dir is relative to `configFile`). A build of other versions
 * than the pinned ones is a ConfigError naming each and the fix.
 */
export function applyBuiltBinaries(config: ClusterConfig, configFile: string): ClusterConfig {
  const dir = config.binaries.dir;
  if (dir === undefined) return config;
  let m: BinariesManifest | undefined;
  try {
    m = readManifest(resolve(dirname(configFile), dir));
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    throw new ConfigError(configFile, [
      { path: 'binaries.dir', value: dir, problem: `${err.file} ${err.problem}`, fix: 'run npm run binaries again, or remove that file' },
    ]);
  }
  if (!m) return config;
  const drift = versionDrift(m.builtFor, builtFor(config.versions));
  if (drift.length) {
    throw new ConfigError(configFile, [
      {
        path: 'binaries.dir',
        value: dir,
        problem: `holds binaries that npm run binaries built for other versions than this file pins (${drift.join('; ')})`,
        fix: `run npm run binaries again, or remove ${join(dir, MANIFEST_FILE)} to install downloaded archives from there`,
      },
    ]);
  }
  return { ...config, versions: withBuiltChecksums(config.versions, m) };
}
