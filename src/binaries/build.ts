// Carries out a recipe (recipes.ts): Go modules from the Go module proxy, built with the local
// Go toolchain, or a C file with gcc, into a cache directory keyed by the recipe, the Go
// version and BUILD_REVISION. A finished build is renamed into place whole, so a cache entry
// either holds every binary of its recipe or does not exist; an interrupted build leaves only
// a `.work-*` directory, removed by the next run.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../run.ts';
import { stagingReplaces, wrapperGoMod, type ModuleVersion } from './gomod.ts';
import type { CRecipe, GoBuild, GoRecipe, Recipe } from './recipes.ts';

/** Bumped when the way a recipe is carried out changes, so that older cache entries are not reused. */
const BUILD_REVISION = 1;

export interface Toolchain {
  runner: Runner;
  /** The go command (/usr/local/go/bin/go, or go on PATH). */
  go: string;
  /** `go version` output: part of every cache key. */
  goVersion: string;
  cacheDir: string;
  log: (line: string) => void;
}

export interface BuiltRecipe {
  name: string;
  /** binary name → its path in the cache. */
  binaries: Map<string, string>;
  /** Seconds the build took, when it was not cached. */
  seconds?: number;
}

export function recipeKey(recipe: Recipe, goVersion: string): string {
  return createHash('sha256')
    .update(JSON.stringify({ recipe, goVersion, revision: BUILD_REVISION }))
    .digest('hex')
    .slice(0, 16);
}

export function binaryNames(recipe: Recipe): string[] {
  return recipe.kind === 'c' ? [recipe.binary] : recipe.builds.flatMap((b) => b.packages.map((p) => p.binary));
}

export async function buildRecipe(recipe: Recipe, tc: Toolchain): Promise<BuiltRecipe> {
  const dir = join(tc.cacheDir, `${recipe.name}-${recipeKey(recipe, tc.goVersion)}`);
  const paths = () => new Map(binaryNames(recipe).map((b) => [b, join(dir, b)]));
  if (existsSync(dir)) return { name: recipe.name, binaries: paths() };
  mkdirSync(tc.cacheDir, { recursive: true });
  const work = mkdtempSync(join(tc.cacheDir, `.work-${recipe.name}-`));
  const started = Date.now();
  try {
    const out = join(work, 'out');
    mkdirSync(out);
    if (recipe.kind === 'c') await buildC(recipe, tc, out);
    else await buildGo(recipe, tc, work, out);
    for (const b of binaryNames(recipe)) if (!existsSync(join(out, b))) throw new Error(`${recipe.name}: the build made no ${b}`);
    renameSync(out, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { name: recipe.name, binaries: paths(), seconds: (Date.now() - started) / 1000 };
}

/** Removes what interrupted builds left behind. */
export function removeAbandonedWork(cacheDir: string): void {
  if (!existsSync(cacheDir)) return;
  for (const e of readdirSync(cacheDir)) if (e.startsWith('.work-')) rmSync(join(cacheDir, e), { recursive: true, force: true });
}

function goEnv(work: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // GOTOOLCHAIN=local: build with the Go this machine has, never one fetched for a go.mod's
  // toolchain line; GOFLAGS from the caller's shell would change what is built.
  return { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '', GOWORK: 'off', GOTMPDIR: work, ...extra };
}

async function goRun(tc: Toolchain, args: string[], cwd: string, work: string, extra?: NodeJS.ProcessEnv): Promise<string> {
  // The runner has no cwd: `go -C dir` (Go ≥ 1.20) changes into it first.
  const r = await tc.runner.run([tc.go, '-C', cwd, ...args], { env: goEnv(work, extra), timeoutMs: 3 * 3600_000 });
  return r.stdout;
}

/** Where the module cache holds `path@version` (downloaded if needed), and its go.mod. */
async function moduleDir(tc: Toolchain, m: ModuleVersion, work: string): Promise<{ dir: string; goMod: string }> {
  const r = await tc.runner.run([tc.go, 'mod', 'download', '-json', `${m.path}@${m.version}`], { env: goEnv(work), allowFail: true, timeoutMs: 1800_000 });
  const info = JSON.parse(r.stdout || '{}') as { Dir?: string; GoMod?: string; Error?: string };
  if (r.code !== 0 || !info.Dir || !info.GoMod) {
    throw new Error(
      `${m.path}@${m.version} cannot be fetched from the Go module proxy: ${info.Error ?? r.stderr.trim()} (is the version pinned in versions: one that was released?)`,
    );
  }
  return { dir: info.Dir, goMod: info.GoMod };
}

async function buildGo(recipe: GoRecipe, tc: Toolchain, work: string, out: string): Promise<void> {
  const src = recipe.source;
  let cwd: string;
  if (src.kind === 'module') {
    // The module's own tree in the module cache (read-only; go build writes only to -o and its cache).
    cwd = (await moduleDir(tc, src.module, work)).dir;
  } else {
    cwd = join(work, 'wrapper');
    mkdirSync(cwd);
    const replaces = src.kubernetesStaging
      ? stagingReplaces(readFileSync((await moduleDir(tc, src.kubernetesStaging, work)).goMod, 'utf8'), src.kubernetesStaging.version)
      : [];
    writeFileSync(
      join(cwd, 'go.mod'),
      wrapperGoMod({ module: `kube-ipsec.local/build/${recipe.name}`, go: src.go, requires: src.requires, replaces, tools: src.tools }),
    );
    tc.log(
      `${recipe.name}: go mod tidy (${src.requires.map((r) => `${r.path}@${r.version}`).join(', ')}${replaces.length ? `, ${replaces.length} staging modules replaced` : ''})`,
    );
    await goRun(tc, ['mod', 'tidy'], cwd, work);
  }
  if (recipe.expect) {
    const m = src.kind === 'module' ? src.module : src.requires[0]!;
    const got = readFileSync(join((await moduleDir(tc, m, work)).dir, recipe.expect.file), 'utf8').trim();
    if (got !== recipe.expect.content)
      throw new Error(
        `${m.path}@${m.version} has ${recipe.expect.file} ${got}, not ${recipe.expect.content}: pin versions.images to the ${recipe.expect.file.split('/').at(-2)} this release carries (${got})`,
      );
  }
  for (const b of recipe.builds) {
    tc.log(`${recipe.name}: go build ${b.packages.map((p) => p.binary).join(' ')} (CGO_ENABLED=${b.cgo ? 1 : 0})`);
    const built = join(work, `build-${b.packages[0]!.binary}`);
    mkdirSync(built);
    await goRun(tc, goBuildArgs(b, built), cwd, work, { CGO_ENABLED: b.cgo ? '1' : '0' });
    for (const p of b.packages) renameSync(join(built, goBinaryName(p.pkg === '.' && src.kind === 'module' ? src.module.path : p.pkg)), join(out, p.binary));
  }
}

/**
 * -mod=readonly: a module zip keeps vendor/modules.txt but not the vendored code, and Go would
 * otherwise build from that empty vendor/ (its default when go.mod says go ≥ 1.14).
 */
export function goBuildArgs(b: GoBuild, outDir: string): string[] {
  return [
    'build',
    '-mod=readonly',
    '-trimpath',
    ...(b.tags.length ? [`-tags=${b.tags.join(',')}`] : []),
    `-ldflags=${b.ldflags.join(' ')}`,
    '-o',
    `${outDir}/`,
    ...b.packages.map((p) => p.pkg),
  ];
}

/**
 * The file `go build -o dir/` names a main package's binary: the last element of its import
 * path, or the one before a major-version suffix (go.etcd.io/etcd/server/v3 → server).
 */
export function goBinaryName(importPath: string): string {
  const parts = importPath.split('/');
  const last = parts.at(-1)!;
  // Go's isVersionElement: v2 and up; a v1 or v0 element is an ordinary name.
  return /^v(?:[2-9]|[1-9]\d+)$/.test(last) && parts.length > 1 ? parts.at(-2)! : last;
}

async function buildC(recipe: CRecipe, tc: Toolchain, out: string): Promise<void> {
  const work = join(out, '..');
  const { dir } = await moduleDir(tc, recipe.module, work);
  tc.log(`${recipe.name}: gcc ${recipe.cflags.join(' ')} ${recipe.file}`);
  await tc.runner.run(['gcc', ...recipe.cflags, '-o', join(out, recipe.binary), join(dir, recipe.file)], { timeoutMs: 600_000 });
}
