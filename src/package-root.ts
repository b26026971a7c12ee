// Where the package lives, however its code runs: from src/ through tsx, or built into
// dist/cli/ (one bundle, chunks per subcommand). Files the code reads at run time —
// templates/, provision/, the plugin in dist/, the lab's image script — are found from here,
// never relative to the module that reads them (a bundle has moved it).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: the kube-ipsec package is incomplete`);
  }
}

/** The directory holding kube-ipsec's package.json. */
export const PACKAGE_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the package. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

/**
 * argv of the kube-ipsec command itself, for running it as a child (provisioning from the
 * labs and the reprovision check): bin/kube-ipsec, the built CLI, rebuilt first if its
 * sources changed, so the child runs the same code as its parent.
 */
export function kubeIpsecArgv(): string[] {
  return [process.execPath, packagePath('bin', 'kube-ipsec')];
}
