// `npm run binaries`' packing for real (src/binaries/pack.ts, image-archive.ts): the real
// process runner with GNU tar and gzip, from small shell scripts standing in for the built
// binaries (the Go builds themselves take an hour and the module proxy). The same binaries must
// give the same bytes, since kube-ipsec-binaries.json records their sha256 and a rebuild must
// not move it; and the files must be what provisioning reads: install-binaries verifies and
// unpacks them as a render of the built checksums pins them, and podman loads each image under
// the ID recorded for it.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageConfig, writeImageArchive, type WrittenImage } from '../../src/binaries/image-archive.ts';
import { applyBuiltBinaries, builtFor, MANIFEST_FILE, writeManifest } from '../../src/binaries/manifest.ts';
import { packArchive } from '../../src/binaries/pack.ts';
import { binariesPlan, type ImageKey } from '../../src/binaries/recipes.ts';
import { PINNED } from '../../src/config/pins.ts';
import { PATHS } from '../../src/plan/paths.ts';
import { imageArchiveName, planCluster } from '../../src/plan/plan.ts';
import { nodeMetaFiles } from '../../src/render/artifacts.ts';
import { processRunner } from '../../src/run.ts';
import { config } from '../helpers/cluster.ts';
import { fileAt } from '../helpers/parse.ts';
import { runScript } from '../helpers/ship-node.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-ipsec-binaries-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plan = binariesPlan(PINNED, 'docker');
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const script = (binary: string) => `#!/bin/sh\necho "${binary} (a stand-in for the built binary)"\n`;

/**
 * Every binary the plan packs, as a small script below `sub`, with `mode` and `mtime`: what a
 * build leaves in its cache. Two of these differ in all but content, as two builds of the
 * same code on two machines do.
 */
function fakeBuild(sub: string, mode: number, mtime: Date): Map<string, string> {
  const names = new Set([
    ...plan.archives.flatMap((a) => a.members.map((m) => m.binary)),
    ...plan.images.flatMap((i) => i.files.flatMap((f) => ('binary' in f ? [f.binary] : []))),
  ]);
  const out = new Map<string, string>();
  for (const name of names) {
    const path = join(dir, sub, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, script(name), { mode });
    utimesSync(path, mtime, mtime);
    out.set(name, path);
  }
  return out;
}

interface Packed {
  dir: string;
  archives: Map<string, string>;
  images: Map<ImageKey, WrittenImage>;
}

/** Packs every archive and image of the plan from `binaries` into `<dir>/<sub>`, as build-all does (one work dir, removed after). */
async function packAll(binaries: Map<string, string>, sub: string): Promise<Packed> {
  const out = join(dir, sub);
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(dir, `work-${sub}-`));
  const archives = new Map<string, string>();
  const images = new Map<ImageKey, WrittenImage>();
  try {
    for (const spec of plan.archives) archives.set(spec.file, await packArchive(processRunner, spec, binaries, join(out, spec.file), work));
    for (const spec of plan.images) images.set(spec.key, await writeImageArchive(processRunner, spec, binaries, join(out, imageArchiveName(spec.image)), work));
    // Each call removes its own staging: a long build-all run must not pile them up.
    expect(readdirSync(work)).toEqual([]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { dir: out, archives, images };
}

/** `tar -tv` of `file` in UTC with numeric owners and full times: [mode string, owner, date, name]. */
async function listing(file: string): Promise<[string, string, string, string][]> {
  const r = await processRunner.run(['tar', '--numeric-owner', '--full-time', '-tvf', file], { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^(\S+) (\d+\/\d+)\s+\d+ (\S+ \S+) (.*)$/.exec(line);
      if (!m) throw new Error(`tar -tv line not understood: ${line}`);
      return [m[1]!, m[2]!, m[3]!, m[4]!];
    });
}

let a: Packed;
let b: Packed;
beforeAll(async () => {
  // Build b: another directory, owner-only modes, an mtime in 2001, packed later into another work dir.
  a = await packAll(fakeBuild('build-a', 0o755, new Date()), 'out-a');
  b = await packAll(fakeBuild('build-b', 0o700, new Date('2001-02-03T04:05:06Z')), 'out-b');
}, 120_000);

describe('release archives from built binaries', () => {
  it('are byte-identical for the same binaries, whatever their directories, modes and mtimes; the returned sha256 is that of the file', () => {
    for (const spec of plan.archives) {
      const bytes = readFileSync(join(a.dir, spec.file));
      expect(a.archives.get(spec.file), spec.file).toBe(sha256(bytes));
      expect(b.archives.get(spec.file), spec.file).toBe(a.archives.get(spec.file));
      expect(readFileSync(join(b.dir, spec.file)).equals(bytes), spec.file).toBe(true);
    }
    // Renamed into place whole: no `.tmp` left beside them (the manifest is the test's own, below).
    expect(
      readdirSync(a.dir)
        .filter((f) => f !== MANIFEST_FILE)
        .sort(),
    ).toEqual([...plan.archives.map((s) => s.file), ...plan.images.map((i) => imageArchiveName(i.image))].sort());
  });

  it('hold each member where the official archive has it, 0755, owned by root, dated 1970-01-01; gzip records no name or time', async () => {
    for (const spec of plan.archives) {
      const file = join(a.dir, spec.file);
      const entries = await listing(file);
      const files = entries.filter(([mode]) => mode.startsWith('-'));
      expect(files.map(([, , , name]) => name).sort(), spec.file).toEqual(spec.members.map((m) => m.path).sort());
      for (const [mode, owner, date, name] of entries) {
        expect([mode, owner, date], `${spec.file}: ${name}`).toEqual([mode.startsWith('d') ? 'drwxr-xr-x' : '-rwxr-xr-x', '0/0', '1970-01-01 00:00:00']);
      }
      for (const m of spec.members) {
        const r = await processRunner.run(['tar', '-xOf', file, m.path]);
        expect(r.stdout, `${spec.file}: ${m.path}`).toBe(script(m.binary));
      }
      // RFC 1952: ID 1f 8b, FLG bit 3 (FNAME) clear, MTIME (bytes 4-7) zero: `gzip -n`.
      const gz = readFileSync(file);
      expect([gz[0], gz[1], gz[3]! & 0x08, gz.readUInt32LE(4)], spec.file).toEqual([0x1f, 0x8b, 0, 0]);
    }
  });

  it('a bare binary is the file itself; a member that no recipe built is an internal error, with no file at the destination', async () => {
    const out = join(dir, 'bare');
    const work = join(dir, 'bare-work');
    mkdirSync(out, { recursive: true });
    mkdirSync(work, { recursive: true });
    const src = join(dir, 'build-a', 'kubectl');
    const sum = await packArchive(
      processRunner,
      { file: 'runc.amd64', members: [{ path: 'runc', binary: 'kubectl' }], bare: true },
      new Map([['kubectl', src]]),
      join(out, 'runc.amd64'),
      work,
    );
    expect(readFileSync(join(out, 'runc.amd64')).equals(readFileSync(src))).toBe(true);
    expect(sum).toBe(sha256(readFileSync(src)));
    await expect(
      packArchive(processRunner, { file: 'x.tar.gz', members: [{ path: 'x/y', binary: 'never-built' }] }, new Map(), join(out, 'x.tar.gz'), work),
    ).rejects.toThrow('internal: x.tar.gz needs never-built, which no recipe built');
    expect(readdirSync(out)).toEqual(['runc.amd64']);
  });
});

describe('image archives from built binaries', () => {
  it('are docker archives: manifest.json names <id>.json, whose sha256 is the ID; the gunzipped layer hashes to the diff_id; RepoTags is the image', async () => {
    for (const spec of plan.images) {
      const written = a.images.get(spec.key)!;
      const file = join(a.dir, imageArchiveName(spec.image));
      expect(written.sha256).toBe(sha256(readFileSync(file)));
      const x = join(dir, `x-${spec.key}`);
      mkdirSync(x);
      await processRunner.run(['tar', '-xf', file, '-C', x]);
      const manifest = JSON.parse(readFileSync(join(x, 'manifest.json'), 'utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
      const id = written.id.slice('sha256:'.length);
      expect(written.id).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(manifest).toEqual([{ Config: `${id}.json`, RepoTags: [spec.image], Layers: [expect.stringMatching(/^[0-9a-f]{64}\/layer\.tar$/)] }]);
      const configText = readFileSync(join(x, `${id}.json`));
      expect(sha256(configText)).toBe(id);
      const cfg = JSON.parse(configText.toString()) as {
        rootfs: { type: string; diff_ids: string[] };
        config: Record<string, unknown>;
        os: string;
        architecture: string;
      };
      const layer = readFileSync(join(x, manifest[0]!.Layers[0]!));
      // Stored gzipped (a smaller upload to each node); its diff_id is that of the tar inside.
      expect([layer[0], layer[1]]).toEqual([0x1f, 0x8b]);
      const diffId = `sha256:${sha256(gunzipSync(layer))}`;
      expect(cfg.rootfs).toEqual({ type: 'layers', diff_ids: [diffId] });
      expect(manifest[0]!.Layers[0]).toBe(`${diffId.slice('sha256:'.length)}/layer.tar`);
      expect(configText.toString()).toBe(imageConfig(spec, diffId));
      expect([cfg.os, cfg.architecture]).toEqual(['linux', 'amd64']);
      expect(cfg.config.Entrypoint).toEqual(spec.entrypoint);
      expect(cfg.config.Cmd).toEqual(spec.cmd);
      expect(cfg.config.User).toEqual(spec.user);
    }
  });

  it('carry the files and links at the image root, 0755 and owned by root, dated 1970-01-01', async () => {
    const spec = plan.images.find((i) => i.key === 'smoke')!;
    const x = join(dir, 'x-smoke-layer');
    mkdirSync(join(x, 'archive'), { recursive: true });
    await processRunner.run(['tar', '-xf', join(a.dir, imageArchiveName(spec.image)), '-C', join(x, 'archive')]);
    const manifest = JSON.parse(readFileSync(join(x, 'archive', 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    const layerTar = join(x, 'layer.tar');
    writeFileSync(layerTar, gunzipSync(readFileSync(join(x, 'archive', manifest[0]!.Layers[0]!))));
    const rootfs = join(x, 'rootfs');
    mkdirSync(rootfs);
    const entries = await listing(layerTar);
    for (const [, owner, date, name] of entries) expect([owner, date], name).toEqual(['0/0', '1970-01-01 00:00:00']);
    const byName = new Map(entries.map(([mode, , , name]) => [name, mode]));
    expect(byName.get('./agnhost')).toBe('-rwxr-xr-x');
    expect(byName.get('./bin/busybox')).toBe('-rwxr-xr-x');
    for (const [path, target] of Object.entries(spec.links)) expect(byName.get(`./${path} -> ${target}`), path).toMatch(/^l/);
    await processRunner.run(['tar', '-xf', layerTar, '-C', rootfs]);
    expect(readFileSync(join(rootfs, 'agnhost'), 'utf8')).toBe(script('agnhost'));
    expect(readFileSync(join(rootfs, 'bin', 'busybox')).equals(readFileSync('/bin/busybox'))).toBe(true);
  });

  it('twice from the same binaries: the same image ID and the same bytes', () => {
    for (const spec of plan.images) {
      expect(b.images.get(spec.key), spec.key).toEqual(a.images.get(spec.key));
      const name = imageArchiveName(spec.image);
      expect(readFileSync(join(b.dir, name)).equals(readFileSync(join(a.dir, name))), name).toBe(true);
    }
  });
});

describe('what provisioning and the runtime make of them', () => {
  it('install-binaries verifies every archive and image by what a render of the built checksums pins, and installs them', async () => {
    // The manifest build-all writes, read back through the config as every command reads it.
    const keys = Object.fromEntries(plan.images.map((i) => [i.key, i]));
    writeManifest(a.dir, {
      builtFor: builtFor(PINNED),
      go: 'go1.26.0 (not used: nothing was built)',
      archives: Object.fromEntries([...a.archives].map(([file, sum]) => [file, { sha256: sum, key: 'test' }])),
      images: Object.fromEntries(
        [...a.images].map(([key, w]) => [
          key,
          { image: keys[key]!.image, archive: imageArchiveName(keys[key]!.image), id: w.id, sha256: w.sha256, key: 'test' },
        ]),
      ) as Parameters<typeof writeManifest>[1]['images'],
    });
    const builtPins = new Map([
      ...[...a.archives].map(([file, sum]) => [file, `sha256:${sum}`] as const),
      ...plan.images.map((i) => [`image:${i.image}`, a.images.get(i.key)!.id] as const),
    ]);
    const c = applyBuiltBinaries(config({ 'binaries.dir': a.dir }), join(dir, 'cluster.yaml'));
    const p = planCluster(c);
    for (const node of [p.nodes.find((n) => n.role === 'master')!, p.nodes.find((n) => n.runsPods)!]) {
      const base = join(dir, `provision-${node.name}`);
      const root = join(base, 'root');
      mkdirSync(root, { recursive: true });
      const artifacts = join(base, 'artifacts.tsv');
      const tsv = fileAt(nodeMetaFiles(p, node), PATHS.artifacts).content;
      writeFileSync(artifacts, tsv);
      const rows = tsv.split('\n').filter((l) => l && !l.startsWith('#'));
      // Every row pinned by the build (the packed file's sha256, the written image's ID), none by an official download.
      for (const [url, checksum] of rows.map((row) => row.split('\t') as [string, string])) {
        expect(checksum, url).toBe(builtPins.get(url.startsWith('image:') ? url : basename(url)));
      }
      const install = (...extra: string[]) => runScript('install-binaries', ['--root', root, '--artifacts', artifacts, '--binaries', a.dir, ...extra], {});
      const check = await install('--fetch-only');
      expect(check.code, check.stderr).toBe(0);
      const r = await install();
      expect(r.code, r.stderr).toBe(0);
      const dests = rows.map((row) => row.split('\t')[3]!);
      expect(r.report.sort(), node.name).toEqual(rows.map((row) => `${row.startsWith('image:') ? 'image' : 'binary'} ${row.split('\t')[3]}`).sort());
      for (const dest of dests) {
        if (dest.startsWith(PATHS.imagesDir)) expect(readFileSync(join(root, dest)).equals(readFileSync(join(a.dir, basename(dest)))), dest).toBe(true);
        else expect(readFileSync(join(root, dest), 'utf8'), dest).toBe(script(basename(dest)));
      }
    }
  });

  it('podman loads each image under the ID recorded for it', async () => {
    // Not skipped when missing: scripts/test-deps installs it, as test/integration/image-archives.test.ts needs it too.
    const which = await processRunner.run(['sh', '-c', 'command -v podman'], { allowFail: true });
    if (which.code !== 0) throw new Error('podman is not installed: run scripts/test-deps');
    // A private store (vfs: no overlay mounts) and no daemon: loading runs no container. podman
    // refuses a runroot path longer than 50 characters, so it gets a short one in /run, as
    // src/lab/vm/test-image.ts does.
    const store = join(dir, 'podman-store');
    const runRoot = mkdtempSync('/run/kube-ipsec-binaries-podman-');
    const podman = ['podman', '--root', store, '--runroot', runRoot, '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
    try {
      for (const spec of plan.images) {
        const load = await processRunner.run([...podman, 'load', '-i', join(a.dir, imageArchiveName(spec.image))], { timeoutMs: 60_000 });
        expect(load.stdout, spec.image).toContain(spec.image);
        const id = (await processRunner.run([...podman, 'image', 'inspect', '--format', '{{.Id}}', spec.image], { timeoutMs: 60_000 })).stdout.trim();
        expect(`sha256:${id}`, spec.image).toBe(a.images.get(spec.key)!.id);
      }
    } finally {
      await processRunner.run([...podman, 'system', 'reset', '--force'], { allowFail: true, timeoutMs: 60_000 });
      rmSync(store, { recursive: true, force: true });
      rmSync(runRoot, { recursive: true, force: true });
    }
  }, 180_000);
});
