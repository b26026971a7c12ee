// npm run box: kube-ipsec's Vagrant box for vagrant-libvirt, built from Debian packages
// (once per recipe, into the image cache) and added to Vagrant as kube-ipsec/debian12.
// Run with sudo, it builds as root and adds the box for the user behind sudo, who runs vagrant.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { commandLine } from '../src/cli-args.ts';
import { cachedImage, DEFAULT_IMAGE_CACHE, imageRecipe } from '../src/lab/vm/image.ts';
import { processRunner } from '../src/run.ts';
import { defaultVagrantHome, ensureBox } from '../src/vagrant/box.ts';
import { LOCAL_BOX } from '../src/vagrant/providers.ts';

const HELP = `usage: npm run box [-- --force] [--image-cache DIR]

Builds kube-ipsec's Vagrant box for vagrant-libvirt — Debian 12 from Debian packages only,
with every package a node installs, so provisioning needs no mirror — and adds it to Vagrant
as ${LOCAL_BOX}. Use it with cluster.yaml's  vagrant: { libvirt: { box: ${LOCAL_BOX} } }.

The build (debootstrap: root and a Debian mirror, a few minutes) happens once per recipe and is
cached in ${DEFAULT_IMAGE_CACHE} with the VM lab's image. Run with sudo, the box is added for
the user behind sudo (the one who runs vagrant); VAGRANT_HOME is honoured.

  --force            add the box again even if the installed one is of this recipe
  --image-cache DIR  where built images are kept (default ${DEFAULT_IMAGE_CACHE})
`;

function homeOf(user: string): string {
  const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
  const home = r.stdout.trim().split(':')[5];
  if (r.status !== 0 || !home) throw new Error(`cannot find the home directory of ${user} (getent passwd ${user})`);
  return home;
}

async function main(argv: string[]): Promise<number> {
  const values = commandLine(
    HELP,
    () =>
      parseArgs({
        args: argv,
        options: { force: { type: 'boolean', default: false }, 'image-cache': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
      }).values,
  );
  if (typeof values === 'number') return values;
  const imageCache = values['image-cache'] ?? DEFAULT_IMAGE_CACHE;
  const root = process.getuid?.() === 0;
  if (!root && !cachedImage(imageCache, imageRecipe())) {
    console.error(`box: the box of this recipe is not built yet, and building it needs root (debootstrap): run \`sudo npm run box\``);
    return 1;
  }
  // Under sudo, Vagrant's box list is the invoking user's.
  const user = root ? process.env.SUDO_USER : undefined;
  const vagrantHome = user ? (process.env.VAGRANT_HOME ?? `${homeOf(user)}/.vagrant.d`) : defaultVagrantHome();
  try {
    const r = await ensureBox({
      runner: processRunner,
      vagrantHome,
      imageCache,
      force: values.force,
      log: (line) => console.log(`box: ${line}`),
      ...(user && { asUser: ['sudo', '-u', user, '-H', 'env', `VAGRANT_HOME=${vagrantHome}`] }),
    });
    const built = r.image.builtIn !== undefined ? `built in ${r.image.builtIn.toFixed(0)} s` : 'cached';
    const added = r.addSeconds !== undefined ? ` in ${r.addSeconds.toFixed(1)} s` : '';
    console.log(`box: ${LOCAL_BOX} (recipe ${r.image.key}, ${built}: ${r.image.box}) ${r.action}${added} for ${user ?? 'this user'} (${vagrantHome})`);
    console.log(`box: use it with cluster.yaml's  vagrant: { libvirt: { box: ${LOCAL_BOX} } }, then: vagrant up --provider libvirt`);
    return 0;
  } catch (err) {
    console.error(`box: ${(err as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
