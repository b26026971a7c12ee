// Builds the command line into dist/cli/ as JavaScript (esbuild): src/cli.ts and everything
// it imports, npm packages included, one chunk per subcommand (each loaded only when used).
// Resolving and loading a package's many files from node_modules cost more than the rest of
// the start-up (measured: docs/decisions/0002-the-cli-is-built-javascript.md); ssh2 stays there (it finds files of its own
// next to its modules), and so does esbuild, which only building loads.
// Every file lands by rename, entry last, and chunk names carry a hash of their content, so
// a CLI starting while another one rebuilds reads either build, never half of one.
// dist/cli/inputs.json records each source file and its mtime, and npm's record of what it
// installed (node_modules/.package-lock.json, rewritten by every install): bin/kube-ipsec
// rebuilds when one of them changed. Plain JavaScript, so it runs without tsx.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const OUT_DIR = join(root, 'dist', 'cli');
export const INPUTS = join(OUT_DIR, 'inputs.json');
/** Chunks of older builds are removed once this old: a CLI started before a rebuild may still load them. */
const KEEP_OLD_MS = 24 * 3600_000;

/** Builds dist/cli; resolves with what it wrote. */
export async function buildCli() {
  const { build } = await import('esbuild');
  const started = performance.now();
  const result = await build({
    absWorkingDir: root,
    entryPoints: { cli: 'src/cli.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: ['ssh2', 'esbuild'],
    // Bundled CommonJS packages call require() for Node's own modules.
    banner: { js: "import { createRequire as __kubeIpsecRequire } from 'node:module'; const require = __kubeIpsecRequire(import.meta.url);" },
    outdir: OUT_DIR,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    sourcemap: 'linked',
    metafile: true,
    write: false,
    logLevel: 'error',
  });
  const suffix = `.tmp-${process.pid}`;
  const entry = join(OUT_DIR, 'cli.js');
  // Chunks and maps first, the entry last: it is what makes the new build the current one.
  const files = [...result.outputFiles].sort((a, b) => Number(a.path === entry) - Number(b.path === entry));
  for (const f of files) {
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(f.path + suffix, f.contents);
    renameSync(f.path + suffix, f.path);
  }
  const installed = 'node_modules/.package-lock.json';
  const sources = Object.keys(result.metafile.inputs).filter((f) => !f.includes('node_modules/'));
  const inputs = [...sources, ...(existsSync(join(root, installed)) ? [installed] : [])].map((f) => [f, statSync(join(root, f)).mtimeMs]);
  writeFileSync(INPUTS + suffix, JSON.stringify({ inputs }) + '\n');
  renameSync(INPUTS + suffix, INPUTS);
  pruneOld(new Set(files.map((f) => f.path)));
  return { files: files.length, inputs: inputs.length, ms: performance.now() - started };
}

function pruneOld(current) {
  const dir = join(OUT_DIR, 'chunks');
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!current.has(path) && Date.now() - statSync(path).mtimeMs > KEEP_OLD_MS) rmSync(path, { force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await buildCli();
  console.log(`build-cli: ${relative(process.cwd(), OUT_DIR) || '.'}/ from ${r.inputs} sources, ${r.files} files, ${Math.round(r.ms)} ms`);
}
