// One node's provisioning run over a Transport, in a single remote command (the ssh exec
// costs more than anything else in a no-op run): provision/session takes the node's lock
// and reports what the node has; only the files that differ are sent, as one tar stream,
// together with the provision/ scripts; provision/provision swaps them in on the node and
// reports each change, which becomes this run's result. A dry run stops after comparing
// and shows the diff instead; a node never sends the content of a secret file.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { packagePath } from '../package-root.ts';
import { PATHS } from '../plan/paths.ts';
import { fileDiff, type PatchMaker } from '../render/output.ts';
import { affectedUnits } from '../render/restarts.ts';
import { SECRET } from '../render/files.ts';
import type { ShipFile, NodeBundle } from './bundle.ts';
import { tarSize, tarStream, type TarEntry } from './tar.ts';
import { shellQuote } from '../shell.ts';
import { ShipError, type RemoteProcess, type Transport } from './transport.ts';

const PROVISION_DIR = packagePath('provision');

export interface ShipOptions {
  /** The node's root: `/`, or a scratch directory (tests). */
  root: string;
  dryRun?: boolean;
  rollback?: boolean;
  /** Called with each progress line (without the node name). */
  progress?: (line: string) => void;
}

export interface NodeResult {
  node: string;
  ok: boolean;
  /** Files installed (new or changed) and removed; with dryRun, those that would be. */
  installed: string[];
  removed: string[];
  binaries: string[];
  /** Binaries not installed: their archive was absent (binaries.allowAbsent). */
  absent: string[];
  /** Units installed and verified but not run, with why: `kubelet.service /usr/local/bin/kubelet`. */
  idle: string[];
  packages: string[];
  /** `restart kubelet.service`, `reload strongswan-starter.service`, `start …`, `enable …`. */
  units: string[];
  failed: string[];
  /** A run that died halfway was completed. */
  resumed: boolean;
  uploaded: { files: number; bytes: number };
  /** dryRun: the unified diff of the node's files. */
  diff?: string;
  error?: string;
  durationMs: number;
}

/** What the node reported before `ready`. */
interface NodeState {
  txnOpen: boolean;
  installed: Set<string>;
  /** stamp: inode:size:mtime:ctime, which `provision --stage` checks again before linking. */
  files: Map<string, { mode: number; stamp: string; sha256?: string }>;
}

export function emptyResult(node: string): NodeResult {
  return {
    node,
    ok: false,
    installed: [],
    removed: [],
    binaries: [],
    absent: [],
    idle: [],
    packages: [],
    units: [],
    failed: [],
    resumed: false,
    uploaded: { files: 0, bytes: 0 },
    durationMs: 0,
  };
}

export async function shipNode(transport: Transport, bundle: NodeBundle, opts: ShipOptions): Promise<NodeResult> {
  const started = performance.now();
  const result = emptyResult(bundle.node);
  const progress = opts.progress ?? (() => {});
  let proc: RemoteProcess | undefined;
  let stderr = '';
  const failure = async (what: string) => {
    await proc?.done;
    const reported = stderr
      .split('\n')
      .filter((l) => l.startsWith('error: '))
      .map((l) => l.slice(7));
    return new ShipError(`${bundle.node}: ${reported.length ? reported.join('; ') : `${what}: ${stderr.trim() || 'the session ended early'}`}`);
  };
  try {
    proc = await transport.exec(sessionCommand(opts.root, bundle.node));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const out = new StreamReader(proc.stdout);
    const probe = opts.rollback ? [] : [...bundle.files.map((f) => f.path), ...bundle.archives.map((a) => `?${a.cachePath}`)];
    proc.stdin.write([...probe, '', ''].join('\n'));
    const state = await readState(out);
    if (!state) throw await failure('the node did not answer');

    const desired = new Set(bundle.files.map((f) => f.path));
    const sameContent = (f: ShipFile) => state.files.get(f.path)?.sha256 === f.sha256;
    const changed = bundle.files.filter((f) => !sameContent(f) || state.files.get(f.path)!.mode !== f.mode);
    const removed = [...state.installed].filter((p) => !desired.has(p)).sort();

    if (opts.dryRun) {
      result.installed = changed.map((f) => f.path);
      result.removed = removed;
      result.resumed = state.txnOpen;
      const before = await showFiles(proc.stdin, out, [...changed.filter((f) => state.files.has(f.path) && showable(f)).map((f) => f.path), ...removed]);
      proc.stdin.end('done\n');
      // Loaded here: only dry runs need a diff library.
      const { createTwoFilesPatch } = await import('diff');
      result.diff = dryRunDiff(createTwoFilesPatch, bundle, changed, removed, state, before);
      result.units = affectedUnits(bundle.rules, new Set([...changed.map((f) => f.path), ...removed])).map((a) => `${a.action} ${a.unit}`);
      const { code } = await proc.done;
      if (code !== 0) throw await failure('the dry run failed');
      result.ok = true;
      return result;
    }

    const uploads = opts.rollback ? [] : bundle.files.filter((f) => !sameContent(f));
    const archives = bundle.archives.filter((a) => !state.files.has(a.cachePath));
    const stage = `${opts.root.replace(/\/+$/, '')}${PATHS.provisionStateDir}/stage`;
    const args = [
      ...(opts.rollback ? ['--rollback'] : ['--stage', stage, ...(archives.length ? ['--binaries', `${stage}/archives`] : [])]),
      ...(bundle.allowAbsent ? ['--allow-absent'] : []),
    ];
    const fill = opts.rollback
      ? ''
      : bundle.files
          .filter(sameContent)
          .map((f) => `${state.files.get(f.path)!.stamp}\t${f.path}\n`)
          .join('');
    const entries: TarEntry[] = [
      ...provisionScripts(),
      { path: 'args', mode: 0o600, content: args.map((a) => `${a}\n`).join('') },
      { path: 'fill.tsv', mode: 0o600, content: fill },
      // What every file holds once this run succeeded: the node records it with the files'
      // final stamps, so the next session need not read any of them again.
      ...(opts.rollback ? [] : [{ path: 'sha256.tsv', mode: 0o600, content: bundle.files.map((f) => `${f.sha256}\t${f.path}\n`).join('') }]),
      ...uploads.map(
        (f): TarEntry => ({
          path: `tree${f.path}`,
          mode: f.mode,
          ...('file' in f.source ? { file: f.source.file, size: f.size } : { content: f.source.content }),
        }),
      ),
      ...(await verifiedArchives(archives)),
    ];
    result.uploaded = { files: uploads.length + archives.length, bytes: tarSize(entries) };
    if (bundle.allowAbsent?.missing.length) progress(`not in binaries.dir (binaries.allowAbsent): ${bundle.allowAbsent.missing.join(', ')}`);
    progress(
      opts.rollback
        ? 'rolling back to the previous installation'
        : `${changed.length + removed.length} of ${bundle.files.length} files differ; sending ${uploads.length} files${archives.length ? ` and ${archives.length} archives` : ''} (${formatBytes(result.uploaded.bytes)})`,
    );
    proc.stdin.write('upload\n');
    const sent = pipeline(tarStream(entries), proc.stdin);
    for (let line = await out.line(); line !== undefined; line = await out.line()) {
      if (record(result, line)) progress(line);
    }
    await sent.catch(() => {}); // a node that stopped reading says why on stderr
    const { code } = await proc.done;
    if (code !== 0) throw await failure('provisioning failed');
    result.ok = true;
  } catch (err) {
    const message = (err as Error).message;
    result.error = message.startsWith(`${bundle.node}: `) ? message : `${bundle.node}: ${message}`;
    // A session still waiting for its next command ends on end of input, installing nothing.
    if (proc && !proc.stdin.writableEnded) proc.stdin.end();
  } finally {
    result.durationMs = performance.now() - started;
  }
  return result;
}

/** provision/session with lib.sh inlined, as one `bash -c` command line. */
export function sessionCommand(root: string, node: string): string {
  const lib = readFileSync(join(PROVISION_DIR, 'lib.sh'), 'utf8');
  const session = readFileSync(join(PROVISION_DIR, 'session'), 'utf8');
  const marker = /^\. "\$\(dirname "\$0"\)\/lib\.sh" # kube-ipsec: lib\.sh is inlined here when sent$/m;
  if (!marker.test(session)) throw new Error('provision/session: the line that sources lib.sh is missing');
  const script = session.replace(marker, () => lib);
  return ['bash', '-c', script, 'kube-ipsec-session', root, node].map(shellQuote).join(' ');
}

function provisionScripts(): TarEntry[] {
  return readdirSync(PROVISION_DIR)
    .sort()
    .map((name) => ({ path: `provision/${name}`, mode: statSync(join(PROVISION_DIR, name)).mode & 0o755, content: readFileSync(join(PROVISION_DIR, name)) }));
}

async function readState(out: StreamReader): Promise<NodeState | undefined> {
  const state: NodeState = { txnOpen: false, installed: new Set(), files: new Map() };
  for (let line = await out.line(); line !== undefined; line = await out.line()) {
    if (line === 'ready') return state;
    const [kind, ...rest] = line.split(' ');
    if (kind === 'txn') state.txnOpen = rest[0] === 'open';
    else if (kind === 'installed') state.installed.add(rest.join(' '));
    else if (kind === 'stat') {
      const [mode, stamp, ...path] = rest;
      state.files.set(path.join(' '), { mode: parseInt(mode!, 8), stamp: stamp! });
    } else if (kind === 'sha256') {
      const [hex, ...path] = rest;
      const f = state.files.get(path.join(' '));
      if (f) f.sha256 = hex;
    }
  }
  return undefined;
}

/** Applies one report line of provision/ to the result; false for lines that are not reports. */
function record(result: NodeResult, line: string): boolean {
  const m = /^(install|remove|binary|image|absent|idle|package|restart|reload|start|stop|enable|disable|failed|resume|daemon-reload)(?: (.+))?$/.exec(line);
  if (!m) return false;
  const [, verb, arg = ''] = m;
  if (verb === 'install') result.installed.push(arg);
  else if (verb === 'remove') result.removed.push(arg);
  else if (verb === 'binary' || verb === 'image') result.binaries.push(arg);
  else if (verb === 'absent') result.absent.push(arg);
  else if (verb === 'idle') result.idle.push(arg);
  else if (verb === 'package') result.packages.push(arg);
  else if (verb === 'failed') result.failed.push(arg);
  else if (verb === 'resume') result.resumed = true;
  else if (verb !== 'daemon-reload') result.units.push(`${verb} ${arg}`);
  return true;
}

/** Text files a diff may show: not secret, not the plugin executable. */
function showable(f: ShipFile): boolean {
  return f.mode !== SECRET && 'content' in f.source;
}

async function showFiles(stdin: NodeJS.WritableStream, out: StreamReader, paths: string[]): Promise<Map<string, { mode: number; content?: string }>> {
  const shown = new Map<string, { mode: number; content?: string }>();
  if (!paths.length) return shown;
  stdin.write(paths.map((p) => `show ${p}\n`).join(''));
  for (let i = 0; i < paths.length; i++) {
    const line = await out.line();
    const m = line === undefined ? null : /^file (\S+) (\S+) (.+)$/.exec(line);
    if (!m) throw new ShipError(`unexpected answer to show: ${line ?? '(end of output)'}`);
    const [, mode, size, path] = m;
    if (mode === '-') continue;
    shown.set(path!, { mode: parseInt(mode!, 8), ...(size !== '-' && { content: (await out.bytes(Number(size))).toString('utf8') }) });
  }
  return shown;
}

function dryRunDiff(
  createTwoFilesPatch: PatchMaker,
  bundle: NodeBundle,
  changed: ShipFile[],
  removed: string[],
  state: NodeState,
  before: Map<string, { mode: number; content?: string }>,
): string {
  const label = (p: string) => `${bundle.node}${p}`;
  const chunks: string[] = [];
  for (const f of changed) {
    const current = state.files.get(f.path);
    if ('file' in f.source) {
      const what = current ? `changed (sha256 ${current.sha256?.slice(0, 12)}… → ${f.sha256.slice(0, 12)}…)` : 'new';
      chunks.push(`--- ${current ? `a/${label(f.path)}` : '/dev/null'}\n+++ b/${label(f.path)}\n@@ binary file ${what} @@\n`);
      continue;
    }
    // Secret on either side: fileDiff names the file and never shows its content.
    const old = current?.sha256 === f.sha256 ? f.source.content : (before.get(f.path)?.content ?? (current ? '' : undefined));
    chunks.push(fileDiff(createTwoFilesPatch, label(f.path), old, f.source.content, current?.mode, f.mode));
  }
  for (const p of removed) {
    const old = before.get(p);
    chunks.push(fileDiff(createTwoFilesPatch, label(p), old?.content ?? '', undefined, old?.mode ?? SECRET, undefined));
  }
  return chunks.join('');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Line and byte reads from one stream (the session mixes report lines and file contents). */
class StreamReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private waiting: (() => void) | undefined;

  constructor(stream: Readable) {
    stream.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    await new Promise<void>((r) => (this.waiting = r));
    return true;
  }

  async line(): Promise<string | undefined> {
    for (;;) {
      const nl = this.buffered.indexOf(0x0a);
      if (nl !== -1) {
        const line = this.buffered.subarray(0, nl).toString('utf8');
        this.buffered = this.buffered.subarray(nl + 1);
        return line;
      }
      if (!(await this.more())) {
        if (!this.buffered.length) return undefined;
        const rest = this.buffered.toString('utf8');
        this.buffered = Buffer.alloc(0);
        return rest;
      }
    }
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.buffered.length < n) if (!(await this.more())) throw new ShipError(`the node's output ended ${n - this.buffered.length} bytes early`);
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }
}

/**
 * Every archive verified (in parallel); when several fail, the error is the first one's in the
 * bundle's order, not whichever hash happened to fail first, so a run names the same archive
 * each time.
 */
async function verifiedArchives(archives: NodeBundle['archives']): Promise<TarEntry[]> {
  const sizes = await Promise.allSettled(archives.map((a) => a.verify()));
  const failed = sizes.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return archives.map((a, i) => ({ path: `archives/${a.name}`, mode: 0o644, file: a.file, size: (sizes[i] as PromiseFulfilledResult<number>).value }));
}
