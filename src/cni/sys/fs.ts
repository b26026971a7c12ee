// File operations of the plugin, straight on libc (see libc.ts for why not node:fs).
// Errors are SysError with the errno, so callers can tell "missing" from "broken".
import { Errno, SysError, check, cstr, errno, libc } from './libc.ts';

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0x40;
const O_TRUNC = 0x200;
const O_APPEND = 0x400;
const O_DIRECTORY = 0x10000;
const O_CLOEXEC = 0x80000;
const W_OK = 2;
const X_OK = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function openFile(path: string, flags: number, mode = 0o644): number {
  return check(libc().open(cstr(path), flags | O_CLOEXEC, mode) as number, `open ${path}`);
}

export function closeFile(fd: number): void {
  libc().close(fd);
}

function readAll(fd: number, what: string): string {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(1 << 16);
  for (;;) {
    const n = libc().read(fd, buf, buf.length) as number;
    if (n < 0 && errno() === Errno.EINTR) continue;
    check(n, `read ${what}`);
    if (n === 0) break;
    chunks.push(buf.slice(0, n));
  }
  if (chunks.length === 1) return decoder.decode(chunks[0]);
  const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return decoder.decode(all);
}

function writeAll(fd: number, text: string | Uint8Array, what: string): void {
  let data = typeof text === 'string' ? encoder.encode(text) : text;
  while (data.length) {
    const n = libc().write(fd, data, data.length) as number;
    if (n < 0 && errno() === Errno.EINTR) continue;
    check(n, `write ${what}`);
    data = data.subarray(n);
  }
}

/** File content, or undefined when it does not exist. */
export function readText(path: string): string | undefined {
  let fd: number;
  try {
    fd = openFile(path, O_RDONLY);
  } catch (e) {
    if (e instanceof SysError && e.errno === Errno.ENOENT) return undefined;
    throw e;
  }
  try {
    return readAll(fd, path);
  } finally {
    closeFile(fd);
  }
}

export const readStdin = (): string => readAll(0, 'stdin');
export const writeStdout = (text: string): void => writeAll(1, text, 'stdout');

export function exists(path: string): boolean {
  return (libc().access(cstr(path), 0) as number) === 0;
}

export const isWritable = (path: string): boolean => (libc().access(cstr(path), W_OK) as number) === 0;
export const isExecutable = (path: string): boolean => (libc().access(cstr(path), X_OK) as number) === 0;

export function mkdirs(path: string, mode = 0o755): void {
  if (exists(path)) return;
  const parent = dirname(path);
  if (parent !== path) mkdirs(parent, mode);
  if ((libc().mkdir(cstr(path), mode) as number) < 0 && errno() !== Errno.EEXIST) check(-1, `mkdir ${path}`);
}

/** One write with O_APPEND: lines of parallel writers never interleave. */
export function appendText(path: string, text: string): void {
  const fd = openFile(path, O_WRONLY | O_CREAT | O_APPEND);
  try {
    writeAll(fd, text, path);
  } finally {
    closeFile(fd);
  }
}

export function openForLock(path: string): number {
  return openFile(path, O_WRONLY | O_CREAT | O_APPEND);
}

/**
 * Replaces `path` atomically: write `tmp`, fsync it (so the rename can never expose an
 * empty or partial file after a power loss), rename it over `path`. The rename becomes
 * durable with syncDir(dirname(path)).
 */
export function replaceAtomically(path: string, tmp: string, text: string): void {
  const fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC);
  try {
    writeAll(fd, text, tmp);
    check(libc().fsync(fd) as number, `fsync ${tmp}`);
  } finally {
    closeFile(fd);
  }
  check(libc().rename(cstr(tmp), cstr(path)) as number, `rename ${tmp}`);
}

/** fsync of a directory: makes renames and creations inside it durable. */
export function syncDir(dir: string): void {
  const fd = openFile(dir, O_RDONLY | O_DIRECTORY);
  try {
    check(libc().fsync(fd) as number, `fsync ${dir}`);
  } finally {
    closeFile(fd);
  }
}

/** Path helpers (node:path costs start-up time too). Paths here are absolute and normalised. */
export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}
