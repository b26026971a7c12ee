// Writing a rendered cluster to out/ (the edge of the render pipeline).
//
// Write-if-changed, all or nothing: the new tree is assembled in a staging directory next
// to out/ — unchanged files are hard links to the current ones, so their inode and mtime
// survive — and then swapped in with two renames. A failure before the swap leaves out/ as
// it was; a crash between the renames is repaired by the next run.
import { closeSync, existsSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { RenderedCluster } from './index.ts';
import { SECRET } from './files.ts';

/** out/-relative path → file, e.g. `minion1/etc/ipsec.conf`, `README.md`. */
export type OutputTree = Map<string, { content: string; mode: number }>;

export function outputTree(cluster: RenderedCluster, onlyNode?: string): OutputTree {
  const tree: OutputTree = new Map();
  for (const [node, files] of cluster.nodes) {
    if (onlyNode !== undefined && node !== onlyNode) continue;
    for (const f of files) tree.set(`${node}${f.path}`, { content: f.content, mode: f.mode });
  }
  if (onlyNode === undefined) {
    tree.set('README.md', { content: cluster.readme, mode: 0o644 });
    tree.set('cluster.json', { content: cluster.summary, mode: 0o644 });
  }
  return tree;
}

export interface WriteReport {
  written: string[];
  unchanged: number;
  removed: string[];
}

/**
 * Makes `root` (out/, or out/<node> when `scope` names a node) hold exactly `tree`.
 * Paths of `tree` are relative to out/; with a scope, only that subtree is replaced.
 */
export function writeOutput(outDir: string, tree: OutputTree, scope?: string): WriteReport {
  recoverInterruptedSwap(outDir);
  const root = scope === undefined ? outDir : join(outDir, scope);
  const prefix = scope === undefined ? '' : `${scope}/`;
  const changed = new Set([...tree].filter(([path, f]) => !sameFile(join(outDir, path), f)).map(([path]) => path));
  const removed = listFiles(root)
    .map((p) => prefix + p)
    .filter((p) => !tree.has(p));
  const report: WriteReport = { written: [...changed], unchanged: tree.size - changed.size, removed };
  // The common re-render changes nothing: then nothing is touched at all.
  if (changed.size === 0 && removed.length === 0) return report;

  const staging = `${root}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const made = new Set<string>();
  try {
    for (const [path, f] of tree) {
      const rel = path.slice(prefix.length);
      const next = join(staging, rel);
      const dir = dirname(next);
      if (!made.has(dir)) {
        mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      if (changed.has(path)) writeFileDurably(next, f.content, f.mode);
      else linkSync(join(root, rel), next);
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  mkdirSync(dirname(root), { recursive: true });
  if (existsSync(root)) {
    const old = `${root}.old-${process.pid}`;
    renameSync(root, old);
    renameSync(staging, root);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(staging, root);
  }
  return report;
}

/** A run killed between the two renames leaves `<root>.old-<pid>` and no root: restore it. */
function recoverInterruptedSwap(outDir: string): void {
  const parent = dirname(outDir);
  if (!existsSync(parent)) return;
  const base = outDir.slice(parent.length + 1);
  for (const name of readdirSync(parent)) {
    const m = new RegExp(`^${escapeRegExp(base)}(\\.staging|\\.old)-[0-9]+$`).exec(name);
    if (!m) continue;
    if (m[1] === '.old' && !existsSync(outDir)) renameSync(join(parent, name), outDir);
    else rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sameFile(path: string, f: { content: string; mode: number }): boolean {
  try {
    const st = lstatSync(path);
    // Size and mode first: most changed files differ there, without reading them.
    if (!st.isFile() || (st.mode & 0o777) !== f.mode || st.size !== Buffer.byteLength(f.content)) return false;
    return readFileSync(path, 'utf8') === f.content;
  } catch {
    return false;
  }
}

function writeFileDurably(path: string, content: string, mode: number): void {
  // The final mode from the first byte: a key is never briefly world-readable.
  const fd = openSync(path, 'wx', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Files under `root`, relative to it ('' if root does not exist). */
export function listFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

/** Unified diff of what writeOutput would change; secret files are named, never shown. */
export async function diffOutput(outDir: string, tree: OutputTree, scope?: string): Promise<string> {
  // Loaded here: only previews need a diff library.
  const { createTwoFilesPatch } = await import('diff');
  const root = scope === undefined ? outDir : join(outDir, scope);
  const prefix = scope === undefined ? '' : `${scope}/`;
  const chunks: string[] = [];
  const current = new Set(listFiles(root).map((p) => prefix + p));
  const read = (p: string) => readFileSync(join(outDir, p), 'utf8');
  for (const [path, f] of [...tree].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const old = current.has(path) ? read(path) : undefined;
    const oldMode = current.has(path) ? lstatSync(join(outDir, path)).mode & 0o777 : undefined;
    if (old === f.content && oldMode === f.mode) continue;
    chunks.push(fileDiff(createTwoFilesPatch, path, old, f.content, oldMode, f.mode));
  }
  for (const path of [...current].sort()) {
    if (!tree.has(path)) chunks.push(fileDiff(createTwoFilesPatch, path, read(path), undefined, lstatSync(join(outDir, path)).mode & 0o777, undefined));
  }
  return chunks.join('');
}

export type PatchMaker = typeof import('diff').createTwoFilesPatch;

/** One file's unified diff; a secret file (0600 on either side) is named, its content never shown. */
export function fileDiff(createTwoFilesPatch: PatchMaker, path: string, before: string | undefined, after: string | undefined, modeBefore?: number, modeAfter?: number): string {
  const a = before === undefined ? '/dev/null' : `a/${path}`;
  const b = after === undefined ? '/dev/null' : `b/${path}`;
  if (modeBefore === SECRET || modeAfter === SECRET) {
    const what = before === undefined ? 'new' : after === undefined ? 'removed' : before === after ? 'mode changed' : 'changed';
    return `--- ${a}\n+++ ${b}\n@@ secret file ${what}; content not shown @@\n`;
  }
  let header = '';
  if (modeBefore !== undefined && modeAfter !== undefined && modeBefore !== modeAfter) {
    header = `mode ${modeBefore.toString(8)} → ${modeAfter.toString(8)}: ${path}\n`;
  }
  if (before === after) return header;
  return header + createTwoFilesPatch(a, b, before ?? '', after ?? '', undefined, undefined, { context: 3 }).split('\n').slice(1).join('\n');
}

