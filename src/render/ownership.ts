// Which directory render may write. out/ holds exactly the rendered tree: a render replaces
// everything in it, so it must only ever be a directory render made. A marker file says so;
// a non-empty directory without it (a checkout, a home directory, a typo) is refused, and so
// is an out/ that is, or holds, the cluster.yaml or the state dir with the CA key.
import { lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { PATHS } from '../plan/paths.ts';
import { GENERATED } from './files.ts';

/** The marker: out/<OUT_MARKER> says that render made this directory and owns all of it. */
export const OUT_MARKER = '.kube-ipsec-out';
export const OUT_MARKER_TEXT =
  'This directory is written by `kube-ipsec render` (npm run render): it holds exactly the\n' +
  'rendered cluster, and every render replaces all of it. Files added here are removed.\n';

export interface OutputRefusal {
  problem: string;
  fix: string;
}

/** A path render must never write over or into (cluster.yaml, the state dir), for messages. */
export interface Protected {
  path: string;
  what: string;
}

/**
 * Why render may not make `outDir` hold its tree (undefined: it may). Symlinks are resolved
 * first: an out/ that reaches the config through a link is refused too.
 */
export function outputDirProblem(outDir: string, protect: Protected[]): OutputRefusal | undefined {
  const out = realPath(outDir);
  const st = lstatOrUndefined(out);
  if (st && !st.isDirectory()) {
    return {
      problem: `is ${st.isFile() ? 'a file' : 'not a directory'}; render writes a directory tree there`,
      fix: 'pass --out a directory of its own, e.g. --out out',
    };
  }
  for (const p of protect) {
    const target = realPath(p.path);
    if (isInside(target, out)) {
      return {
        problem: `${target === out ? 'is' : 'holds'} ${p.what} ${p.path}: render replaces everything in its output directory`,
        fix: 'pass --out a directory of its own that holds neither cluster.yaml nor the state dir, e.g. --out out',
      };
    }
  }
  if (!st || isRenderOutput(out)) return undefined;
  const entries = readdirSync(out);
  if (entries.length === 0 || isEarlierRender(out, entries)) return undefined;
  return {
    problem: `is not empty and was not written by render (it has no ${OUT_MARKER}): render replaces everything in its output directory`,
    fix: `pass --out a new or empty directory, e.g. --out out; if ${outDir} is a render you want replaced, empty it first`,
  };
}

/** Does `dir` carry the marker? */
export function isRenderOutput(dir: string): boolean {
  return lstatOrUndefined(join(dir, OUT_MARKER))?.isFile() === true;
}

/**
 * An out/ rendered before the marker existed: README.md and cluster.json at most, and
 * otherwise only node trees, each with the node.env render writes (first line GENERATED).
 * Adopted as render's own, so that upgrading does not stop `vagrant up`.
 */
function isEarlierRender(dir: string, entries: string[]): boolean {
  let nodes = 0;
  for (const name of entries) {
    const st = lstatSync(join(dir, name));
    if (name === 'README.md' || name === 'cluster.json') {
      if (!st.isFile()) return false;
      continue;
    }
    if (!st.isDirectory() || !isNodeTree(join(dir, name))) return false;
    nodes++;
  }
  return nodes > 0;
}

function isNodeTree(dir: string): boolean {
  const env = join(dir, PATHS.nodeEnv);
  // Every component a real directory (no symlink leads out), and node.env a regular file.
  let at = dir;
  for (const part of PATHS.nodeEnv.split('/').filter(Boolean)) {
    at = join(at, part);
    const st = lstatOrUndefined(at);
    if (!st || (at === env ? !st.isFile() : !st.isDirectory())) return false;
  }
  return readFileSync(env, 'utf8').startsWith(`# ${GENERATED}\n`);
}

/** `p` with every symlink resolved, also when its last components do not exist yet. */
export function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const parent = dirname(p);
    return parent === p ? p : join(realPath(parent), basename(p));
  }
}

/** Is `p` the directory `dir` or inside it? */
function isInside(p: string, dir: string): boolean {
  const rel = relative(dir, p);
  return rel === '' || rel.split(sep)[0] !== '..';
}

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
