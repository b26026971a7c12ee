// Writing a rendered cluster to out/ (the edge of the render pipeline).
//
// Write-if-changed, all or nothing: the new tree is assembled in a staging directory next
// to out/ — unchanged files are hard links to the current ones, so their inode and mtime
// survive — and then swapped in with two renames. A failure before the swap leaves out/ as
// it was; a crash between the renames is repaired by the next run.
//
// out/ is render's own (ownership.ts: its marker file). Nothing in it is trusted as a path:
// symlinks are never followed — an existing file is reused or read only when it is a regular
// file reached through real directories — and a symlink is removed like any stale file.
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { RenderedCluster } from './index.ts';
import { SECRET } from './files.ts';
import { isRenderOutput, OUT_MARKER, OUT_MARKER_TEXT, outputDirProblem, realPath, type Protected } from './ownership.ts';

/** out/ itself: it holds every node's keys, the CA key among them. */
const OUT_DIR_MODE = 0o700;
/** Directories inside it mirror a node's file system (its /etc, /usr/local/…). */
const TREE_DIR_MODE = 0o755;

/** out/-relative path → file, e.g. `minion1/etc/ipsec.conf`, `README.md`. */
export type OutputTree = Map<string, { content: string; mode: number }>;

export function outputTree(cluster: RenderedCluster, onlyNode?: string): OutputTree {
  // The marker first: a staging directory is recognisable as render's from its first file.
  const tree: OutputTree = new Map(onlyNode === undefined ? [[OUT_MARKER, { content: OUT_MARKER_TEXT, mode: 0o644 }]] : []);
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
 * Refuses (OutputRefusedError) an out/ that is not render's own (outputDirProblem).
 */
export function writeOutput(outDir: string, tree: OutputTree, scope?: string, protect: Protected[] = []): WriteReport {
  outDir = ownedOutputDir(outDir, protect);
  recoverInterruptedSwap(outDir);
  const root = scope === undefined ? outDir : join(outDir, scope);
  const prefix = scope === undefined ? '' : `${scope}/`;
  const current = regularFiles(root);
  const changed = new Set([...tree].filter(([path, f]) => !sameFile(root, current, path.slice(prefix.length), f)).map(([path]) => path));
  const removed = listFiles(root)
    .map((p) => prefix + p)
    .filter((p) => !tree.has(p));
  const report: WriteReport = { written: [...changed], unchanged: tree.size - changed.size, removed };
  if (scope !== undefined) claimOutputDir(outDir);
  // The common re-render changes nothing: then nothing is touched at all.
  if (changed.size === 0 && removed.length === 0) return report;

  const staging = `${root}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  if (scope === undefined) mkdirSync(dirname(outDir), { recursive: true, mode: 0o755 });
  makeDir(staging, scope === undefined ? OUT_DIR_MODE : TREE_DIR_MODE);
  const made = new Set([staging]);
  try {
    for (const [path, f] of tree) {
      const rel = path.slice(prefix.length);
      const next = join(staging, rel);
      makeDirs(staging, dirname(next), made);
      if (changed.has(path)) writeFileDurably(next, f.content, f.mode);
      else linkSync(join(root, rel), next);
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
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

/** Render refuses to write or preview into `outDir` (outputDirProblem says why). */
class OutputRefusedError extends Error {
  constructor(
    readonly outDir: string,
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${outDir}: ${problem}\n    fix: ${fix}`);
    this.name = 'OutputRefusedError';
  }
}

/** `outDir` with its symlinks resolved, once it is known to be render's to write. */
function ownedOutputDir(outDir: string, protect: Protected[]): string {
  const refusal = outputDirProblem(outDir, protect);
  if (refusal) throw new OutputRefusedError(outDir, refusal.problem, refusal.fix);
  return realPath(outDir);
}

/** out/ exists, private, with the marker (a --node render may be the first one). */
function claimOutputDir(outDir: string): void {
  if (isRenderOutput(outDir)) return;
  if (!existsSync(outDir)) {
    mkdirSync(dirname(outDir), { recursive: true, mode: 0o755 });
    makeDir(outDir, OUT_DIR_MODE);
  }
  writeFileDurably(join(outDir, OUT_MARKER), OUT_MARKER_TEXT, 0o644);
}

/** Creates `dir` with exactly `mode` (whatever the umask). */
function makeDir(dir: string, mode: number): void {
  mkdirSync(dir, { mode });
  chmodSync(dir, mode);
}

/** Creates the directories below `base` (which exists) down to `dir`, each with TREE_DIR_MODE. */
function makeDirs(base: string, dir: string, made: Set<string>): void {
  if (made.has(dir) || dir === base) return;
  makeDirs(base, dirname(dir), made);
  makeDir(dir, TREE_DIR_MODE);
  made.add(dir);
}

/** A run killed between the two renames leaves `<root>.old-<pid>` and no root: restore it. */
function recoverInterruptedSwap(outDir: string): void {
  const parent = dirname(outDir);
  if (!existsSync(parent)) return;
  const base = outDir.slice(parent.length + 1);
  for (const name of readdirSync(parent)) {
    const m = new RegExp(`^${escapeRegExp(base)}(\\.staging|\\.old)-[0-9]+$`).exec(name);
    // Only render's own: a staging or old out/ carries the marker.
    if (!m || !isRenderOutput(join(parent, name))) continue;
    if (m[1] === '.old' && !existsSync(outDir)) renameSync(join(parent, name), outDir);
    else rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

interface FileFacts {
  mode: number;
  size: number;
}

/** Regular files under `root` (relative paths), reached without following any symlink. */
function regularFiles(root: string): Map<string, FileFacts> {
  const out = new Map<string, FileFacts>();
  for (const p of listFiles(root)) {
    const st = lstatSync(join(root, p));
    if (st.isFile()) out.set(p, { mode: st.mode & 0o777, size: st.size });
  }
  return out;
}

/** Is `rel` under root a regular file (as scanned) with exactly this content and mode? */
function sameFile(root: string, current: Map<string, FileFacts>, rel: string, f: { content: string; mode: number }): boolean {
  const facts = current.get(rel);
  // Size and mode first: most changed files differ there, without reading them.
  if (!facts || facts.mode !== f.mode || facts.size !== Buffer.byteLength(f.content)) return false;
  return readRegularFile(join(root, rel)) === f.content;
}

/** A regular file's content, never through a symlink (O_NOFOLLOW); undefined if it is not one. */
function readRegularFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    return fstatSync(fd).isFile() ? readFileSync(fd, 'utf8') : undefined;
  } finally {
    closeSync(fd);
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

/** Everything but directories under `root` (files, symlinks…), relative to it, without following symlinks. */
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

/**
 * Unified diff of what writeOutput would change; secret files are named, never shown, and
 * nothing reached through a symlink (or other than a regular file) is ever read.
 */
export async function diffOutput(outDir: string, tree: OutputTree, scope?: string, protect: Protected[] = []): Promise<string> {
  outDir = ownedOutputDir(outDir, protect);
  // Loaded here: only previews need a diff library.
  const { createTwoFilesPatch } = await import('diff');
  const root = scope === undefined ? outDir : join(outDir, scope);
  const prefix = scope === undefined ? '' : `${scope}/`;
  const chunks: string[] = [];
  const current = new Map([...regularFiles(root)].map(([p, facts]) => [prefix + p, facts]));
  const read = (p: string) => readRegularFile(join(outDir, p)) ?? '';
  for (const [path, f] of [...tree].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const facts = current.get(path);
    const old = facts && read(path);
    if (old === f.content && facts!.mode === f.mode) continue;
    chunks.push(fileDiff(createTwoFilesPatch, path, old, f.content, facts?.mode, f.mode));
  }
  for (const path of listFiles(root).map((p) => prefix + p)) {
    if (tree.has(path)) continue;
    const facts = current.get(path);
    chunks.push(
      facts
        ? fileDiff(createTwoFilesPatch, path, read(path), undefined, facts.mode, undefined)
        : `--- a/${path}\n+++ /dev/null\n@@ not a regular file (a symlink?), removed; not read @@\n`,
    );
  }
  return chunks.join('');
}

export type PatchMaker = typeof import('diff').createTwoFilesPatch;

/** One file's unified diff; a secret file (0600 on either side) is named, its content never shown. */
export function fileDiff(
  createTwoFilesPatch: PatchMaker,
  path: string,
  before: string | undefined,
  after: string | undefined,
  modeBefore?: number,
  modeAfter?: number,
): string {
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
  return (
    header +
    createTwoFilesPatch(a, b, before ?? '', after ?? '', undefined, undefined, { context: 3 })
      .split('\n')
      .slice(1)
      .join('\n')
  );
}
