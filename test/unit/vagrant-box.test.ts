// `npm run box`: the cached box of this recipe is added to Vagrant unless the installed one
// is of the same recipe (its metadata.json says which); `vagrant box add` is the only command.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageRecipe, recipeKey } from '../../src/lab/vm/image.ts';
import type { Runner } from '../../src/run.ts';
import { boxAddArgv, ensureBox, installedBoxDir, installedRecipe } from '../../src/vagrant/box.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-box-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An image cache holding this recipe's complete build (files, not a real build). */
function cacheWithImage(): { cache: string; key: string } {
  const cache = join(dir, 'images');
  const key = recipeKey(imageRecipe());
  mkdirSync(join(cache, key), { recursive: true });
  for (const f of ['vmlinuz', 'initrd.gz', 'disk.img', 'libvirt.box', 'recipe.json']) writeFileSync(join(cache, key, f), '');
  return { cache, key };
}

function recorder(): Runner & { calls: string[][] } {
  const calls: string[][] = [];
  return { calls, run: async (argv) => (calls.push([...argv]), { code: 0, stdout: '', stderr: '' }) };
}

function install(home: string, recipe: string): void {
  mkdirSync(installedBoxDir(home), { recursive: true });
  writeFileSync(
    join(installedBoxDir(home), 'metadata.json'),
    JSON.stringify({ provider: 'libvirt', format: 'qcow2', virtual_size: 8, kube_ipsec_recipe: recipe }),
  );
}

describe('npm run box', () => {
  const { cache, key } = cacheWithImage();

  it('adds the cached box when Vagrant has none, replaces one of another recipe, and leaves its own alone', async () => {
    const home = join(dir, 'vagrant.d');
    const r = recorder();
    expect(installedRecipe(home)).toBeUndefined();
    const added = await ensureBox({ runner: r, vagrantHome: home, imageCache: cache });
    expect(added.action).toBe('added');
    expect(r.calls).toEqual([boxAddArgv(added.image)]);
    expect(r.calls[0]).toEqual([
      'env',
      `VAGRANT_CWD=${tmpdir()}`,
      'vagrant',
      'box',
      'add',
      '--force',
      '--name',
      'kube-ipsec/debian12',
      '--provider',
      'libvirt',
      join(cache, key, 'libvirt.box'),
    ]);

    install(home, 'an-older-recipe');
    expect((await ensureBox({ runner: r, vagrantHome: home, imageCache: cache })).action).toBe('replaced');
    install(home, key);
    expect((await ensureBox({ runner: r, vagrantHome: home, imageCache: cache })).action).toBe('already installed');
    expect(r.calls).toHaveLength(2);
    expect((await ensureBox({ runner: r, vagrantHome: home, imageCache: cache, force: true })).action).toBe('replaced');
  });

  it("adds it as the user behind sudo, in that user's Vagrant home", async () => {
    const r = recorder();
    const home = join(dir, 'user', '.vagrant.d');
    await ensureBox({ runner: r, vagrantHome: home, imageCache: cache, asUser: ['sudo', '-u', 'alice', '-H', 'env', `VAGRANT_HOME=${home}`] });
    expect(r.calls[0]!.slice(0, 9)).toEqual(['sudo', '-u', 'alice', '-H', 'env', `VAGRANT_HOME=${home}`, 'env', `VAGRANT_CWD=${tmpdir()}`, 'vagrant']);
  });
});
