// Air-gapped image archives through provision/install-binaries, for real: an image built here
// from Debian's busybox-static by podman and saved as a docker archive (what `docker save`
// writes), verified and installed into a scratch root; then the ways an archive can be wrong,
// each refused before anything is installed with the file, what was expected and the fix.
// (Loading into docker happens in the VM lab, whose minions run Debian's docker.io.)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestImage, type BuiltImage } from '../../src/lab/vm/test-image.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { processRunner } from '../../src/run.ts';
import { dockerArchive } from '../helpers/ship-releases.ts';
import { runScript } from '../helpers/ship-node.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-images-'));
let built: BuiltImage;
const NAME = 'smoke-busybox.tar';
const DEST = `${PATHS.imagesDir}/${NAME}`;

beforeAll(async () => {
  // A work dir as deep as a lab's state dir in a home directory: podman's runroot must not live there (≤ 50 characters).
  built = await buildTestImage(processRunner, join(dir, 'a-state-directory-deep-in-someones-home-directory', 'image-build'), join(dir, 'built.tar'));
}, 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A binaries dir holding `archive` as NAME, an artifacts.tsv naming it, a fresh root. */
function setup(tag: string, archive: string | undefined, opts: { image?: string; id?: string } = {}) {
  const base = join(dir, tag);
  const binaries = join(base, 'binaries');
  const root = join(base, 'root');
  mkdirSync(binaries, { recursive: true });
  mkdirSync(root, { recursive: true });
  if (archive) copyFileSync(archive, join(binaries, NAME));
  const artifacts = join(base, 'artifacts.tsv');
  writeFileSync(artifacts, `# test\nimage:${opts.image ?? built.image}\t${opts.id ?? built.id}\t${NAME}\t${DEST}\n`);
  const install = (...extra: string[]) => runScript('install-binaries', ['--root', root, '--artifacts', artifacts, '--binaries', binaries, ...extra], {});
  return { binaries, root, install };
}

describe('image archives of an air-gapped install', () => {
  it('a podman-saved docker archive is verified by its image ID and layers, installed 0644, and left alone the second time', async () => {
    expect(built.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const s = setup('good', built.archive);
    const check = await s.install('--fetch-only');
    expect(check.code, check.stderr).toBe(0);
    expect(existsSync(join(s.root, DEST)), 'fetch-only installs nothing').toBe(false);
    const first = await s.install();
    expect(first.code, first.stderr).toBe(0);
    expect(first.report).toEqual([`image ${DEST}`]);
    expect(readFileSync(join(s.root, DEST)).equals(readFileSync(built.archive))).toBe(true);
    expect(statSync(join(s.root, DEST)).mode & 0o777).toBe(0o644);
    const again = await s.install();
    expect(again.code, again.stderr).toBe(0);
    expect(again.report).toEqual([]);
  });

  it('without a pinned ID it is still checked for integrity and its tag', async () => {
    const s = setup('unpinned', built.archive, { id: '-' });
    expect((await s.install()).report).toEqual([`image ${DEST}`]);
    const other = setup('unpinned-other', built.archive, { id: '-', image: 'registry.k8s.io/pause:3.10.1' });
    const r = await other.install('--fetch-only');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: ${NAME}: is not tagged registry.k8s.io/pause:3.10.1 (its tags: ${built.image}); save it under that name: docker save -o ${NAME} registry.k8s.io/pause:3.10.1`,
    );
  });

  it.each([
    [
      'another image than the pinned one',
      () => (dockerArchive(join(dir, 'other.tar'), built.image, 'not the pinned image'), join(dir, 'other.tar')),
      /holds image sha256:[0-9a-f]{64}, but kube-ipsec\.test\/smoke:busybox is pinned to sha256:[0-9a-f]{64} \(versions\.images\)\. It is not the pinned image/,
    ],
    [
      'a flipped byte in a layer',
      () => flipLayerByte(built.archive, join(dir, 'flipped.tar')),
      /corrupt: layer \S+ hashes to sha256:[0-9a-f]{64}, its config says sha256:[0-9a-f]{64}/,
    ],
    ['a truncated archive', () => truncated(built.archive, join(dir, 'truncated.tar')), /no manifest\.json in it: not an image archive, or a truncated one/],
    [
      'a file that is no image archive',
      () => notAnImage(join(dir, 'plain.tar')),
      /no manifest\.json in it: not an image archive, or a truncated one \(make it with docker save -o smoke-busybox\.tar kube-ipsec\.test\/smoke:busybox\)/,
    ],
  ])('refuses %s before anything is installed', async (tag, make, message) => {
    const s = setup(tag.replace(/\W+/g, '-'), make());
    for (const pass of [['--fetch-only'], []]) {
      const r = await s.install(...pass);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(`error: ${NAME}: `);
      expect(existsSync(join(s.root, DEST))).toBe(false);
    }
  });

  it('a missing archive fails with where to put it and how to make it; with allowAbsent it is reported absent', async () => {
    const s = setup('missing', undefined);
    const r = await s.install('--fetch-only');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: air-gapped install: ${s.binaries}/${NAME} is missing. Put the image ${built.image} there as an archive (on a connected machine: docker pull ${built.image} && docker save -o ${NAME} ${built.image}; its image ID must be ${built.id})`,
    );
    const absent = await s.install('--allow-absent');
    expect(absent.code, absent.stderr).toBe(0);
    expect(absent.report).toEqual([`absent ${DEST}`]);
  });
});

// helpers building broken archives from the real one

function flipLayerByte(src: string, out: string): string {
  const work = join(dir, 'flip');
  mkdirSync(work, { recursive: true });
  run(['tar', '-xf', src, '-C', work]);
  const manifest = JSON.parse(readFileSync(join(work, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  const layer = join(work, manifest[0]!.Layers[0]!);
  const bytes = readFileSync(layer);
  bytes[Math.floor(bytes.length / 2)]! ^= 1;
  writeFileSync(layer, bytes);
  run(['tar', '-cf', out, '-C', work, ...readdirSync(work)]);
  return out;
}

function truncated(src: string, out: string): string {
  copyFileSync(src, out);
  truncateSync(out, Math.floor(statSync(out).size / 2));
  return out;
}

function notAnImage(out: string): string {
  const work = join(dir, 'plain');
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, 'hello'), 'hello\n');
  run(['tar', '-cf', out, '-C', work, 'hello']);
  return out;
}

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}
