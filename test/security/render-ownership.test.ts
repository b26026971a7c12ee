// Finding: `render --out DIR` made DIR hold exactly the rendered tree, whatever DIR was. It
// deleted a cluster.yaml, a .git and the state dir with the CA key it had just written
// (`--out .` in a checkout removed the checkout); it followed a directory symlink planted in
// out/ and hard-linked the foreign inodes into the new tree; `render --diff` followed
// symlinks and printed a private key; `--out` naming a file ended in a stack trace after the
// state dir was written. Now out/ is render's own (a marker), never holds the config or the
// state dir, and nothing in it is followed; on a real file system, through the CLI.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/render/cli.ts';
import { listFiles } from '../../src/render/output.ts';
import { OUT_MARKER } from '../../src/render/ownership.ts';
import { clusterYaml } from '../helpers/cluster.ts';
import { cliSandbox } from '../helpers/render-cli.ts';

const box = cliSandbox('secown');

const config = () => join(box.dir, 'cluster.yaml');
const render = (out: string, ...extra: string[]) => main(['--config', config(), '--out', out, ...extra]);
/** Every entry under `d` (directories too), with its content or link target: what must not change. */
function snapshot(d: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      const st = lstatSync(full);
      out.set(full, e.isDirectory() ? `dir ${st.mode & 0o7777}` : e.isSymbolicLink() ? `link ${st.ino}` : `file ${st.ino} ${readFileSync(full, 'utf8')}`);
      if (e.isDirectory()) walk(full);
    }
  };
  walk(d);
  return out;
}

describe('render writes only a directory of its own', () => {
  it('--out . in a checkout is refused, and the checkout stays as it was (no state dir either)', async () => {
    writeFileSync(config(), clusterYaml());
    mkdirSync(join(box.dir, '.git'));
    writeFileSync(join(box.dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    const before = snapshot(box.dir);
    expect(await render(box.dir)).toBe(2);
    const message = box.output.join('\n');
    expect(message).toMatch(/--out = ".*": holds the cluster description .*cluster\.yaml/);
    expect(message).toContain('nothing was written');
    expect(snapshot(box.dir)).toEqual(before);
    expect(existsSync(join(box.dir, '.kube-ipsec'))).toBe(false);
  });

  it('an out/ that is or holds the state dir is refused', async () => {
    writeFileSync(config(), clusterYaml());
    expect(await render(join(box.dir, 'out'), '--state', join(box.dir, 'out', 'state'))).toBe(2);
    expect(box.output.join('\n')).toMatch(/--out = ".*": holds the state dir/);
    expect(await render(join(box.dir, 'state'), '--state', join(box.dir, 'state'))).toBe(2);
    expect(box.output.join('\n')).toMatch(/--out = ".*": is the state dir/);
    expect(readdirSync(box.dir)).toEqual(['cluster.yaml']);
  });

  it('a symlink to the checkout counts as the checkout', async () => {
    mkdirSync(join(box.dir, 'checkout'));
    writeFileSync(join(box.dir, 'checkout', 'cluster.yaml'), clusterYaml());
    symlinkSync(join(box.dir, 'checkout'), join(box.dir, 'link'));
    expect(await main(['--config', join(box.dir, 'checkout', 'cluster.yaml'), '--out', join(box.dir, 'link')])).toBe(2);
    expect(readdirSync(join(box.dir, 'checkout'))).toEqual(['cluster.yaml']);
  });

  it('a non-empty directory render did not make is refused, untouched, before the state dir exists', async () => {
    writeFileSync(config(), clusterYaml());
    const home = join(box.dir, 'home');
    mkdirSync(join(home, '.git'), { recursive: true });
    writeFileSync(join(home, 'notes.txt'), 'mine');
    const before = snapshot(home);
    expect(await render(home)).toBe(2);
    expect(box.output.join('\n')).toMatch(/--out = ".*home": is not empty and was not written by render \(it has no \.kube-ipsec-out\)/);
    expect(snapshot(home)).toEqual(before);
    expect(existsSync(join(box.dir, '.kube-ipsec'))).toBe(false);
    // --diff previews what render would do: it is refused the same way, and shows no file.
    expect(await render(home, '--diff')).toBe(2);
    expect(box.output.join('\n')).not.toContain('mine');
  });

  it('--out naming a file is an error naming it, before the state dir is written', async () => {
    writeFileSync(config(), clusterYaml());
    writeFileSync(join(box.dir, 'out.txt'), 'a file');
    expect(await render(join(box.dir, 'out.txt'))).toBe(2);
    expect(box.output.join('\n')).toMatch(/--out = ".*out\.txt": is a file; render writes a directory tree there/);
    expect(readFileSync(join(box.dir, 'out.txt'), 'utf8')).toBe('a file');
    expect(existsSync(join(box.dir, '.kube-ipsec'))).toBe(false);
  });

  it("a new or empty directory becomes render's own, marked; an out/ of an earlier render is adopted", async () => {
    writeFileSync(config(), clusterYaml());
    const out = join(box.dir, 'out');
    mkdirSync(out);
    expect(await render(out)).toBe(0);
    expect(readFileSync(join(out, OUT_MARKER), 'utf8')).toMatch(/written by `kube-ipsec render`/);
    // As rendered before the marker existed: adopted (upgrading must not stop `vagrant up`)…
    rmSync(join(out, OUT_MARKER));
    expect(await render(out)).toBe(0);
    expect(existsSync(join(out, OUT_MARKER))).toBe(true);
    // …but not once something else lives at its top.
    rmSync(join(out, OUT_MARKER));
    writeFileSync(join(out, 'thesis.tex'), 'mine');
    expect(await render(out)).toBe(2);
    expect(readFileSync(join(out, 'thesis.tex'), 'utf8')).toBe('mine');
  });
});

describe('nothing inside out/ is followed', () => {
  it('a directory symlink planted in out/ is replaced, and no foreign inode joins the tree', async () => {
    writeFileSync(config(), clusterYaml());
    const out = join(box.dir, 'out');
    expect(await render(out)).toBe(0);
    // A foreign directory holding exact copies of the node's /etc files (content and mode):
    // the files write-if-changed would take as unchanged and hard-link into the new tree.
    const foreign = join(box.dir, 'foreign-etc');
    const etc = join(out, 'minion1', 'etc');
    for (const f of listFiles(etc)) {
      mkdirSync(join(foreign, f, '..'), { recursive: true });
      writeFileSync(join(foreign, f), readFileSync(join(etc, f)), { mode: statSync(join(etc, f)).mode & 0o777 });
    }
    rmSync(etc, { recursive: true });
    symlinkSync(foreign, etc);
    const foreignBefore = snapshot(foreign);
    const foreignInodes = new Set(listFiles(foreign).map((f) => statSync(join(foreign, f)).ino));

    expect(await render(out)).toBe(0);
    expect(lstatSync(etc).isDirectory()).toBe(true);
    for (const f of listFiles(out)) {
      const st = lstatSync(join(out, f));
      expect(st.isFile(), f).toBe(true);
      expect(foreignInodes.has(st.ino), `${f} is a foreign inode`).toBe(false);
    }
    expect(snapshot(foreign)).toEqual(foreignBefore);
  });

  it('render --diff never prints a file reached through a symlink', async () => {
    writeFileSync(config(), clusterYaml());
    const out = join(box.dir, 'out');
    expect(await render(out)).toBe(0);
    const secret = join(box.dir, 'id_ed25519');
    writeFileSync(secret, '-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-MATERIAL\n', { mode: 0o644 });
    mkdirSync(join(box.dir, 'keys'));
    writeFileSync(join(box.dir, 'keys', 'ca.key'), 'MORE-SECRET-MATERIAL\n', { mode: 0o644 });
    // A stale file that is a link, a link where a rendered file is, a link to a directory.
    symlinkSync(secret, join(out, 'minion1', 'notes'));
    rmSync(join(out, 'minion1', 'etc', 'ipsec.conf'));
    symlinkSync(secret, join(out, 'minion1', 'etc', 'ipsec.conf'));
    symlinkSync(join(box.dir, 'keys'), join(out, 'master', 'keys'));
    box.output = [];
    expect(await render(out, '--diff')).toBe(0);
    const diff = box.output.join('');
    expect(diff).not.toContain('SECRET-MATERIAL');
    expect(diff).toContain('--- a/minion1/notes\n+++ /dev/null\n@@ not a regular file (a symlink?), removed; not read @@');
    expect(diff).toContain('+++ b/minion1/etc/ipsec.conf');
    expect(diff).toContain('--- a/master/keys\n+++ /dev/null');
    // and the render that follows removes the links, not what they point to
    expect(await render(out)).toBe(0);
    expect(lstatSync(join(out, 'minion1', 'etc', 'ipsec.conf')).isFile()).toBe(true);
    expect(existsSync(join(out, 'minion1', 'notes')) || existsSync(join(out, 'master', 'keys'))).toBe(false);
    expect(readFileSync(secret, 'utf8')).toContain('SECRET-MATERIAL');
    expect(readFileSync(join(box.dir, 'keys', 'ca.key'), 'utf8')).toContain('MORE-SECRET-MATERIAL');
  });
});

describe('directories get explicit modes', () => {
  it('out/ is 0700 and the trees inside 0755, whatever the umask', async () => {
    writeFileSync(config(), clusterYaml());
    const out = join(box.dir, 'out');
    const umask = process.umask(0o000);
    try {
      expect(await render(out)).toBe(0);
      expect(await render(join(box.dir, 'node-out'), '--node', 'minion2')).toBe(0);
    } finally {
      process.umask(umask);
    }
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(statSync(join(box.dir, 'node-out')).mode & 0o777).toBe(0o700);
    const dirs = [...snapshot(out)].filter(([, v]) => v.startsWith('dir '));
    expect(dirs.length).toBeGreaterThan(10);
    for (const [p, v] of dirs) expect(v, p).toBe(`dir ${0o755}`);
  });
});
