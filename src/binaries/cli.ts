// `kube-ipsec binaries`: builds the binaries and images of cluster.yaml's pinned versions from
// their Go modules into binaries.dir (default ./binaries), for machines that cannot download
// the release archives but reach the Go module proxy. Builds are cached by recipe; a run whose
// outputs are all in place and recorded does no work.
import { dirname, relative, resolve } from 'node:path';
import { clusterCommandLine, clusterPaths } from '../cli-args.ts';
import type { ClusterConfig } from '../config/defaults.ts';
import { ConfigError } from '../config/errors.ts';
import { readClusterFile } from '../config/load.ts';
import { processRunner } from '../run.ts';
import { buildBinaries, DEFAULT_CACHE_DIR, type BuildBinariesResult } from './build-all.ts';
import { findGo } from './go.ts';

const HELP = `usage: npm run binaries -- [options]

Builds the pinned Kubernetes, etcd, cri-dockerd, CoreDNS, pause and agnhost from their Go
modules (Go >= 1.26 and gcc needed) into archives and image archives shaped like the
official ones, and records their checksums in kube-ipsec-binaries.json. Point cluster.yaml's
binaries.dir at the directory and provisioning installs them as it would downloads.

  --config FILE     cluster description (default ./cluster.yaml): its versions
  --dir DIR         where the archives go (default: binaries.dir of the config,
                    else ./binaries next to it)
  --cache DIR       build cache (default ${DEFAULT_CACHE_DIR}, or $KUBE_IPSEC_BUILD_CACHE)
`;

export async function main(argv: string[]): Promise<number> {
  const args = clusterCommandLine(HELP, argv, { dir: { type: 'string' }, cache: { type: 'string' } });
  if (typeof args === 'number') return args;
  const { configFile } = clusterPaths(args);
  let config: ClusterConfig;
  try {
    // As written: a binaries.dir built for other versions is what this run replaces.
    config = readClusterFile(configFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const dir = args.dir !== undefined ? resolve(args.dir) : resolve(dirname(configFile), config.binaries.dir ?? 'binaries');
  const cacheDir = resolve(args.cache ?? process.env.KUBE_IPSEC_BUILD_CACHE ?? DEFAULT_CACHE_DIR);
  const started = Date.now();
  let result: BuildBinariesResult;
  try {
    const go = await findGo(processRunner);
    result = await buildBinaries({
      versions: config.versions,
      runtime: config.runtime,
      dir,
      cacheDir,
      ...go,
      runner: processRunner,
      log: (l) => console.log(l),
    });
  } catch (err) {
    console.error(`binaries: ${(err as Error).message}`);
    return 1;
  }
  const shown = relative(process.cwd(), dir) || '.';
  console.log(`${shown}/: ${result.written.length} written, ${result.unchanged} unchanged (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (config.binaries.dir === undefined) {
    console.log(`to install these, set in ${relative(process.cwd(), configFile)}:\n  binaries:\n    dir: ${relative(dirname(configFile), dir) || '.'}`);
  }
  return 0;
}
