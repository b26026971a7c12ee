// kube-ipsec's own Vagrant box for vagrant-libvirt: the node image recipe's box
// (src/lab/vm/build-image.sh builds it with the VM lab's image, from the same root file
// system and package list), built once per recipe into the image cache, then added to
// Vagrant as LOCAL_BOX. An installed box of another recipe is replaced.
import { existsSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureImage, type NodeImage } from '../lab/vm/image.ts';
import type { Runner } from '../run.ts';
import { LOCAL_BOX } from './providers.ts';

export interface BoxOptions {
  runner: Runner;
  /** Vagrant's home (VAGRANT_HOME, default ~/.vagrant.d) of the user who runs vagrant. */
  vagrantHome?: string;
  /** Prefix of the `vagrant box add` argv, e.g. to run it as the user behind sudo. */
  asUser?: string[];
  /** Environment of `vagrant box add`. */
  env?: NodeJS.ProcessEnv;
  imageCache?: string;
  log?: (line: string) => void;
  /** Add the box even if the installed one is of this recipe. */
  force?: boolean;
}

export interface BoxResult {
  image: NodeImage;
  /** What happened to Vagrant's box list. */
  action: 'added' | 'replaced' | 'already installed';
  /** Seconds `vagrant box add` took (undefined when nothing was added). */
  addSeconds?: number;
}

/** Where Vagrant keeps the libvirt box LOCAL_BOX (version 0: a box added from a file). */
export function installedBoxDir(vagrantHome: string): string {
  return join(vagrantHome, 'boxes', LOCAL_BOX.replaceAll('/', '-VAGRANTSLASH-'), '0', 'libvirt');
}

/** The recipe key of the installed box (its metadata.json says), undefined if none is installed. */
export function installedRecipe(vagrantHome: string): string | undefined {
  const file = join(installedBoxDir(vagrantHome), 'metadata.json');
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { kube_ipsec_recipe?: string }).kube_ipsec_recipe ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function defaultVagrantHome(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  return env.VAGRANT_HOME ?? join(home, '.vagrant.d');
}

export function boxAddArgv(image: NodeImage): string[] {
  // VAGRANT_CWD away from any Vagrantfile (also through sudo, which drops the environment): run
  // in a project, `vagrant box add` would load its Vagrantfile (kube-ipsec's renders the
  // cluster) and leave a .vagrant/ directory there.
  return ['env', `VAGRANT_CWD=${tmpdir()}`, 'vagrant', 'box', 'add', '--force', '--name', LOCAL_BOX, '--provider', 'libvirt', image.box];
}

/** Builds the box if the cache has none for this recipe, then adds it to Vagrant unless it is there. */
export async function ensureBox(o: BoxOptions): Promise<BoxResult> {
  const image = await ensureImage({ runner: o.runner, ...(o.log && { log: o.log }), ...(o.imageCache !== undefined && { cacheDir: o.imageCache }) });
  const home = o.vagrantHome ?? defaultVagrantHome(o.env);
  const installed = installedRecipe(home);
  if (installed === image.key && !o.force) return { image, action: 'already installed' };
  const started = performance.now();
  await o.runner.run([...(o.asUser ?? []), ...boxAddArgv(image)], { timeoutMs: 600_000, env: { ...(o.env ?? process.env), VAGRANT_HOME: home } });
  return { image, action: installed === undefined ? 'added' : 'replaced', addSeconds: (performance.now() - started) / 1000 };
}
